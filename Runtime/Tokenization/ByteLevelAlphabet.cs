using OnnxGpt.Contracts;

namespace OnnxGpt.Runtime.Tokenization;

/// <summary>
/// GPT-2's byte-to-unicode table: byte-level BPE vocabularies write every byte as one printable character, so
/// that a token string like <c>"Ġworld"</c> stands for the bytes <c>" world"</c>. Bytes that are printable
/// Latin-1 (<c>!</c>..<c>~</c>, <c>¡</c>..<c>¬</c>, <c>®</c>..<c>ÿ</c>) map to themselves; the other 68 map, in
/// byte order, to U+0100, U+0101, ... (space 0x20 becomes U+0120 'Ġ', newline 0x0A becomes U+010A 'Ċ').
/// </summary>
internal static class ByteLevelAlphabet
{
    private static readonly char[] ByteToCharTable = BuildByteToChar();
    private static readonly short[] CharToByteTable = BuildCharToByte();

    public static char ToChar(byte b) => ByteToCharTable[b];

    public static bool TryToByte(char c, out byte b)
    {
        if (c < CharToByteTable.Length && CharToByteTable[c] >= 0)
        {
            b = (byte)CharToByteTable[c];
            return true;
        }

        b = 0;
        return false;
    }

    /// <summary>The bytes a vocabulary string stands for, or null if it holds a character outside the alphabet.</summary>
    public static byte[]? TryToBytes(string token)
    {
        var bytes = new byte[token.Length];
        for (var i = 0; i < token.Length; i++)
        {
            if (!TryToByte(token[i], out bytes[i]))
            {
                return null;
            }
        }

        return bytes;
    }

    private static bool MapsToItself(int b) => b is >= '!' and <= '~' or >= '¡' and <= '¬' or >= '®' and <= 'ÿ';

    private static char[] BuildByteToChar()
    {
        var table = new char[256];
        var next = 256;
        for (var b = 0; b < 256; b++)
        {
            table[b] = MapsToItself(b) ? (char)b : (char)next++;
        }

        return table;
    }

    private static short[] BuildCharToByte()
    {
        var table = new short[256 + 68];
        Array.Fill(table, (short)-1);
        for (var b = 0; b < 256; b++)
        {
            table[ByteToCharTable[b]] = (short)b;
        }

        return table;
    }
}
