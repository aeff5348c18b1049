using Mono.Cecil;
using Mono.Cecil.Cil;

namespace MeshGuard.Tests.Common;

/// <summary>
/// Which namespaces of an assembly import which, read from the compiled assembly (signatures and method bodies
/// alike, so a fully qualified name or an implicit parent-namespace reference counts too), and the cycles among
/// them: the test behind "dependencies point one way" for the sidecar and the control plane.
/// </summary>
public sealed class NamespaceGraph
{
    private NamespaceGraph(string root, Dictionary<string, HashSet<string>> edges, Dictionary<(string From, string To), string> examples)
    {
        Root = root;
        Edges = edges;
        _examples = examples;
    }

    // One type-to-type reference behind each edge, so that a failure says where to look.
    private readonly Dictionary<(string From, string To), string> _examples;

    /// <summary>The namespace every node of the graph is under.</summary>
    public string Root { get; }

    /// <summary>Namespace to the namespaces it imports (only those under <see cref="Root"/>).</summary>
    public IReadOnlyDictionary<string, HashSet<string>> Edges { get; }

    /// <summary>The graph of the namespaces under <paramref name="root"/> in the assembly at <paramref name="assemblyPath"/>.</summary>
    public static NamespaceGraph Read(string assemblyPath, string root)
    {
        var examples = new Dictionary<(string From, string To), string>();
        return new(root, ReadEdges(assemblyPath, root, examples), examples);
    }

    /// <summary>Each cycle (a strongly connected set of more than one namespace) with the edges inside it, one line each; empty when there is none.</summary>
    public List<string> DescribeCycles() => Cycles(Edges).ConvertAll(c =>
        string.Join(", ", c) + " (edges: " + string.Join(", ", c.SelectMany(f => Edges[f].Where(c.Contains).Select(t => f[Root.Length..] + "->" + t[Root.Length..] + " [" + _examples[(f, t)] + "]"))) + ")");

    private static Dictionary<string, HashSet<string>> ReadEdges(string path, string root, Dictionary<(string From, string To), string> examples)
    {
        using var module = ModuleDefinition.ReadModule(path);
        var graph = new Dictionary<string, HashSet<string>>(StringComparer.Ordinal);
        foreach (var type in module.GetTypes())
        {
            var from = NamespaceOf(type, root);
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
                    if (reference is not TypeSpecification && NamespaceOf(reference, root) is { } to && to != from)
                    {
                        if (targets.Add(to))
                        {
                            examples[(from, to)] = type.Name + " uses " + reference.Name;
                        }
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
    private static string? NamespaceOf(TypeReference type, string root)
    {
        while (type.DeclaringType is not null)
        {
            type = type.DeclaringType;
        }
        var ns = type.Namespace;
        return ns == root || ns.StartsWith(root + ".", StringComparison.Ordinal) ? ns : null;
    }

    /// <summary>Strongly connected components of more than one namespace (Tarjan).</summary>
    private static List<List<string>> Cycles(IReadOnlyDictionary<string, HashSet<string>> graph)
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
}
