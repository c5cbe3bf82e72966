/** Yielded in place of a line longer than the limit (the line itself is discarded unread). */
export const LINE_TOO_LONG = Symbol('LINE_TOO_LONG');

/**
 * Splits a byte stream into lines without buffering more than one line. Splitting on the
 * byte 0x0A is safe in UTF-8 (it never occurs inside a multi-byte sequence), so each line is
 * decoded whole. A trailing `\r` is removed. Lines longer than `maxLineBytes` are skipped to
 * the next newline and reported as {@link LINE_TOO_LONG}, which keeps memory bounded even
 * for a file with no newline at all.
 */
export async function* splitLines(
  source: AsyncIterable<Buffer | string> | Iterable<Buffer | string>,
  maxLineBytes: number,
): AsyncGenerator<string | typeof LINE_TOO_LONG> {
  let carry: Buffer[] = [];
  let carryLen = 0;
  let overflow = false;
  for await (const raw of source) {
    const chunk = typeof raw === 'string' ? Buffer.from(raw, 'utf8') : raw;
    let pos = 0;
    for (;;) {
      const nl = chunk.indexOf(10, pos);
      if (nl === -1) {
        const rest = chunk.subarray(pos);
        if (!overflow && carryLen + rest.length > maxLineBytes) {
          overflow = true;
          carry = [];
          carryLen = 0;
        }
        if (!overflow && rest.length > 0) {
          carry.push(rest);
          carryLen += rest.length;
        }
        break;
      }
      const piece = chunk.subarray(pos, nl);
      pos = nl + 1;
      if (overflow || carryLen + piece.length > maxLineBytes) {
        overflow = false;
        carry = [];
        carryLen = 0;
        yield LINE_TOO_LONG;
        continue;
      }
      yield decode(carry, carryLen, piece);
      carry = [];
      carryLen = 0;
    }
  }
  if (overflow) yield LINE_TOO_LONG;
  else if (carryLen > 0) yield decode(carry, carryLen, Buffer.alloc(0));
}

function decode(carry: Buffer[], carryLen: number, piece: Buffer): string {
  const bytes = carryLen === 0 ? piece : Buffer.concat([...carry, piece], carryLen + piece.length);
  let end = bytes.length;
  if (end > 0 && bytes[end - 1] === 13) end--;
  return bytes.toString('utf8', 0, end);
}
