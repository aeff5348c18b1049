namespace MeshGuard.FlowLog.Tests;

/// <summary>The hex digits of ids and hashes: the same text as the runtime's lower-case hex, for every octet value.</summary>
public sealed class LowerHexTests
{
    [Fact]
    public void EveryOctetValueIsSpelledAsTheRuntimeSpellsIt()
    {
        var octets = Enumerable.Range(0, 256).Select(static v => (byte)v).ToArray();
        var digits = new byte[512];
        LowerHex.Write(octets, digits);
        Assert.Equal(Convert.ToHexStringLower(octets), System.Text.Encoding.ASCII.GetString(digits));
    }

    [Theory]
    [InlineData(0)]
    [InlineData(1)]
    [InlineData(8)]
    [InlineData(16)]
    [InlineData(32)]
    public void OnlyTheDigitsOfTheOctetsAreWrittenAndTheRestOfTheDestinationIsLeft(int length)
    {
        var octets = new byte[length];
        new Random(length).NextBytes(octets);
        var destination = Enumerable.Repeat((byte)'#', (length * 2) + 3).ToArray();
        LowerHex.Write(octets, destination);
        Assert.Equal(Convert.ToHexStringLower(octets) + "###", System.Text.Encoding.ASCII.GetString(destination));
    }

    [Fact]
    public void NoOctetsWriteNothingEvenIntoAnEmptyDestination()
    {
        LowerHex.Write([], []);
        var destination = "##"u8.ToArray();
        LowerHex.Write([], destination);
        Assert.Equal("##"u8.ToArray(), destination);
    }

    [Fact]
    public void ADestinationTooShortForTheDigitsIsRefusedBeforeAnythingIsWritten()
    {
        var destination = new byte[31];
        Assert.Throws<ArgumentException>(() => LowerHex.Write(new byte[16], destination));
        Assert.All(destination, static d => Assert.Equal(0, d));
    }

    [Fact]
    public void AMadeIdIsItsThirtyTwoDigitsMostSignificantFirst()
    {
        var id = new UInt128(0x0123456789abcdef, 0xfedcba9876543210);
        Assert.Equal("0123456789abcdeffedcba9876543210", FlowRecord.HexText(id));
    }
}
