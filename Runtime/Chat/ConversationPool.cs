using OnnxGpt.Contracts;
using OnnxGpt.Runtime.Generation;

namespace OnnxGpt.Runtime.Chat;

/// <summary>
/// Idle generators of finished requests, most recently used first, at most <c>capacity</c> of them. A request
/// takes the one whose sequence shares the longest token prefix with its prompt, for its sole use, and returns it
/// when done. Thread-safe.
/// </summary>
internal sealed class ConversationPool(int capacity) : IDisposable
{
    private readonly LinkedList<Generator> _idle = new();
    private readonly Lock _lock = new();
    private bool _disposed;

    public int Count
    {
        get
        {
            lock (_lock)
            {
                return _idle.Count;
            }
        }
    }

    /// <summary>
    /// Takes the idle generator sharing the longest prefix with <paramref name="prompt"/>, if that prefix covers at
    /// least half of its sequence: a conversation is taken over by its own continuation (or a close branch, such as
    /// an edited last message), not by another one that merely starts the same way. Null when none qualifies.
    /// </summary>
    public Generator? Take(ReadOnlySpan<int> prompt, out int common)
    {
        common = 0;
        lock (_lock)
        {
            LinkedListNode<Generator>? best = null;
            for (var node = _idle.First; node is not null; node = node.Next)
            {
                var sequence = node.Value.GetSequence(0);
                int shared = sequence.CommonPrefixLength(prompt);
                if (shared > common && 2 * shared >= sequence.Length)
                {
                    best = node;
                    common = shared;
                }
            }

            if (best is null)
            {
                return null;
            }

            _idle.Remove(best);
            return best.Value;
        }
    }

    /// <summary>Keeps <paramref name="generator"/> as the most recent; disposes the least recent beyond capacity.</summary>
    public void Return(Generator generator)
    {
        Generator? evicted = generator;
        lock (_lock)
        {
            if (!_disposed && capacity > 0 && generator.BatchSize == 1)
            {
                _idle.AddFirst(generator);
                evicted = null;
                if (_idle.Count > capacity)
                {
                    evicted = _idle.Last!.Value;
                    _idle.RemoveLast();
                }
            }
        }

        evicted?.Dispose();
    }

    public void Dispose()
    {
        List<Generator> idle;
        lock (_lock)
        {
            _disposed = true;
            idle = [.. _idle];
            _idle.Clear();
        }

        foreach (var generator in idle)
        {
            generator.Dispose();
        }
    }
}
