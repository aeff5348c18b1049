using Mono.Cecil;
using Mono.Cecil.Cil;

namespace MeshGuard.Proxy.Tests;

/// <summary>
/// Dependencies point one way: the sidecar's namespaces, read from the compiled assembly (signatures and method
/// bodies alike, so a fully qualified name or an implicit parent-namespace reference counts too), must form no
/// cycle. The composition root (Program, SidecarHost, ProxySettings) is imported by none: each module takes its own
/// settings record, which the root fills; FlowLog names the uploader only by the interface it defines, and telemetry
/// reads the log's counters instead of the log writing into telemetry.
/// </summary>
public sealed class NamespaceDependencyTests
{
    private const string Root = "MeshGuard.Proxy";

    private static Dictionary<string, HashSet<string>> ReadGraph()
    {
        var path = typeof(MeshGuard.Proxy.Transport.MeshHeaders).Assembly.Location;
        using var module = ModuleDefinition.ReadModule(path);
        var graph = new Dictionary<string, HashSet<string>>(StringComparer.Ordinal);
        foreach (var type in module.GetTypes())
        {
            var from = NamespaceOf(type);
            if (from is null)
            {
                continue;
            }
            var targets = graph.TryGetValue(from, out var existing) ? existing : graph[from] = new HashSet<string>(StringComparer.Ordinal);
            void Add(TypeReference? reference)
            {
                for (; reference is not null; reference = reference is TypeSpecification spec ? spec.ElementType : null)
                {
                    if (reference is GenericInstanceType generic)
                    {
                        foreach (var argument in generic.GenericArguments)
                        {
                            Add(argument);
                        }
                    }
                    if (reference is not TypeSpecification && NamespaceOf(reference) is { } to && to != from)
                    {
                        targets.Add(to);
                    }
                }
            }
            Add(type.BaseType);
            foreach (var implemented in type.Interfaces)
            {
                Add(implemented.InterfaceType);
            }
            foreach (var field in type.Fields)
            {
                Add(field.FieldType);
            }
            foreach (var method in type.Methods)
            {
                Add(method.ReturnType);
                foreach (var parameter in method.Parameters)
                {
                    Add(parameter.ParameterType);
                }
                if (!method.HasBody)
                {
                    continue;
                }
                foreach (var local in method.Body.Variables)
                {
                    Add(local.VariableType);
                }
                foreach (var instruction in method.Body.Instructions)
                {
                    switch (instruction.Operand)
                    {
                        case TypeReference reference:
                            Add(reference);
                            break;
                        case MemberReference member:
                            Add(member.DeclaringType);
                            if (member is MethodReference called)
                            {
                                Add(called.ReturnType);
                                if (called is GenericInstanceMethod genericMethod)
                                {
                                    foreach (var argument in genericMethod.GenericArguments)
                                    {
                                        Add(argument);
                                    }
                                }
                            }
                            else if (member is FieldReference field)
                            {
                                Add(field.FieldType);
                            }
                            break;
                    }
                }
            }
        }
        return graph;
    }

    /// <summary>The namespace a type belongs to (a nested or compiler-generated type: its outermost type's), if it is the sidecar's.</summary>
    private static string? NamespaceOf(TypeReference type)
    {
        while (type.DeclaringType is not null)
        {
            type = type.DeclaringType;
        }
        var ns = type.Namespace;
        return ns == Root || ns.StartsWith(Root + ".", StringComparison.Ordinal) ? ns : null;
    }

    /// <summary>Strongly connected components of more than one namespace (Tarjan).</summary>
    private static List<List<string>> Cycles(Dictionary<string, HashSet<string>> graph)
    {
        var index = new Dictionary<string, int>();
        var low = new Dictionary<string, int>();
        var stack = new Stack<string>();
        var onStack = new HashSet<string>();
        var result = new List<List<string>>();
        var next = 0;
        void Visit(string node)
        {
            index[node] = low[node] = next++;
            stack.Push(node);
            onStack.Add(node);
            foreach (var to in graph.GetValueOrDefault(node) ?? [])
            {
                if (!index.TryGetValue(to, out var seen))
                {
                    Visit(to);
                    low[node] = Math.Min(low[node], low[to]);
                }
                else if (onStack.Contains(to))
                {
                    low[node] = Math.Min(low[node], seen);
                }
            }
            if (low[node] == index[node])
            {
                var component = new List<string>();
                string member;
                do
                {
                    member = stack.Pop();
                    onStack.Remove(member);
                    component.Add(member);
                }
                while (member != node);
                if (component.Count > 1)
                {
                    component.Sort(StringComparer.Ordinal);
                    result.Add(component);
                }
            }
        }
        foreach (var node in graph.Keys.ToList())
        {
            if (!index.ContainsKey(node))
            {
                Visit(node);
            }
        }
        return result;
    }

    [Fact]
    public void TheSidecarsNamespacesFormNoCycle()
    {
        var graph = ReadGraph();
        var cycles = Cycles(graph);
        Assert.True(cycles.Count == 0, "namespaces that import each other: " + string.Join("; ", cycles.Select(c =>
            string.Join(", ", c) + " (edges: " + string.Join(", ", c.SelectMany(f => graph[f].Where(c.Contains).Select(t => f[(Root.Length)..] + "->" + t[(Root.Length)..]))) + ")")));
    }

    [Fact]
    public void NoModuleImportsTheCompositionRoot()
    {
        var graph = ReadGraph();
        var intoRoot = graph.Where(n => n.Key != Root && n.Value.Contains(Root)).Select(n => n.Key).ToList();
        Assert.True(intoRoot.Count == 0, "import the root: " + string.Join(", ", intoRoot));
    }

    [Fact]
    public void TheTransportLayerImportsNoOtherNamespaceOfTheSidecar()
    {
        var graph = ReadGraph();
        var transport = graph.Where(n => n.Key.StartsWith(Root + ".Transport", StringComparison.Ordinal))
            .SelectMany(n => n.Value.Where(t => !t.StartsWith(Root + ".Transport", StringComparison.Ordinal)).Select(t => n.Key + "->" + t)).ToList();
        Assert.True(transport.Count == 0, string.Join(", ", transport));
    }
}
