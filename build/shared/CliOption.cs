using System.CommandLine;
using System.CommandLine.Parsing;
using System.Globalization;

namespace MeshGuard.CommandLine;

/// <summary>
/// Options of MeshGuard's executables: every flag <c>--some-flag</c> can also be given as the
/// environment variable <c>MESHGUARD_SOME_FLAG</c>; the flag wins.
/// </summary>
internal static class CliOption
{
    public static string EnvironmentName(string flag) =>
        "MESHGUARD_" + flag.TrimStart('-').Replace('-', '_').ToUpperInvariant();

    public static Option<string?> Text(string flag, string description, string? defaultValue = null) =>
        Build<string?>(flag, description, defaultValue, static value => (value, null));

    public static Option<int> Port(string flag, string description, int defaultValue) =>
        Build(flag, description, defaultValue, static value =>
            int.TryParse(value, NumberStyles.None, CultureInfo.InvariantCulture, out var port) && port is >= 0 and <= 65535
                ? (port, null)
                : (0, $"'{value}' is not a port number (0-65535)"));

    public static Option<int> Number(string flag, string description, int defaultValue) =>
        Build(flag, description, defaultValue, static value =>
            int.TryParse(value, NumberStyles.None, CultureInfo.InvariantCulture, out var number)
                ? (number, null)
                : (0, $"'{value}' is not a whole number"));

    public static Option<TimeSpan> Duration(string flag, string description, TimeSpan defaultValue) =>
        Build(flag, description, defaultValue, static value =>
            Durations.TryParse(value, out var duration)
                ? (duration, null)
                : (TimeSpan.Zero, $"'{value}' is not a duration (examples: 30s, 10m, 1h)"));

    public static Option<bool> Flag(string flag, string description)
    {
        var option = new Option<bool>(flag) { Description = description };
        var variable = EnvironmentName(flag);
        option.DefaultValueFactory = _ => Environment.GetEnvironmentVariable(variable) is "1" or "true";
        return option;
    }

    private static Option<T> Build<T>(string flag, string description, T defaultValue, Func<string, (T Value, string? Error)> parse)
    {
        var variable = EnvironmentName(flag);
        var option = new Option<T>(flag) { Description = $"{description} [env {variable}]" };
        option.CustomParser = result => Convert(result, result.Tokens.Count > 0 ? result.Tokens[0].Value : null, flag, parse, defaultValue);
        option.DefaultValueFactory = result =>
        {
            var fromEnvironment = Environment.GetEnvironmentVariable(variable);
            return string.IsNullOrEmpty(fromEnvironment) ? defaultValue : Convert(result, fromEnvironment, variable, parse, defaultValue);
        };
        return option;
    }

    private static T Convert<T>(ArgumentResult result, string? value, string source, Func<string, (T Value, string? Error)> parse, T fallback)
    {
        if (value is null)
        {
            return fallback;
        }
        var (parsed, error) = parse(value);
        if (error is not null)
        {
            result.AddError($"{source}: {error}");
        }
        return parsed;
    }

    /// <summary>The value of a required option, or a parse error naming the flag and its variable.</summary>
    public static string Required(ParseResult result, Option<string?> option)
    {
        var value = result.GetValue(option);
        if (string.IsNullOrWhiteSpace(value))
        {
            throw new CliUsageException($"{option.Name} is required (or set {EnvironmentName(option.Name)})");
        }
        return value;
    }

    /// <summary>The value of a whole-number option, or a usage error naming the flag and the range it must be in.</summary>
    public static int InRange(ParseResult result, Option<int> option, int min, int max) =>
        result.GetValue(option) is var value && value >= min && value <= max
            ? value
            : throw new CliUsageException($"{option.Name} must be from {min} to {max}");
}

/// <summary>A mistake in how a command was called: printed as one line, exit code 2.</summary>
internal sealed class CliUsageException(string message) : Exception(message);

/// <summary>Durations as people write them: 500ms, 30s, 10m, 1h, 7d.</summary>
internal static class Durations
{
    public static bool TryParse(string text, out TimeSpan duration)
    {
        duration = TimeSpan.Zero;
        if (string.IsNullOrWhiteSpace(text))
        {
            return false;
        }
        var unitStart = 0;
        while (unitStart < text.Length && (char.IsAsciiDigit(text[unitStart]) || text[unitStart] == '.'))
        {
            unitStart++;
        }
        if (unitStart == 0 || !double.TryParse(text.AsSpan(0, unitStart), NumberStyles.AllowDecimalPoint, CultureInfo.InvariantCulture, out var amount))
        {
            return TimeSpan.TryParse(text, CultureInfo.InvariantCulture, out duration) && duration > TimeSpan.Zero;
        }
        duration = text[unitStart..] switch
        {
            "ms" => TimeSpan.FromMilliseconds(amount),
            "s" or "" => TimeSpan.FromSeconds(amount),
            "m" => TimeSpan.FromMinutes(amount),
            "h" => TimeSpan.FromHours(amount),
            "d" => TimeSpan.FromDays(amount),
            _ => TimeSpan.Zero,
        };
        return duration > TimeSpan.Zero;
    }
}
