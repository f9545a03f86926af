import { Buffer } from 'node:buffer';

/** API Gateway's WebSocket message limit: a larger `@connections` POST or route response is not delivered. */
export const MAX_OUTGOING_FRAME_BYTES = 128 * 1024;

/** `{"type":"encrypted","jwe":"<jwe>"}` around a compact `dir` + `A256GCM` JWE, minus its ciphertext. */
const ENVELOPE_BYTES = (() => {
  const b64 = (bytes: number) => Math.ceil((bytes * 4) / 3);
  const header = b64(Buffer.byteLength(JSON.stringify({ alg: 'dir', enc: 'A256GCM' })));
  // header . (no encrypted key) . iv (96 bits) . ciphertext . tag (128 bits)
  const jweWithoutCiphertext = header + 1 + 1 + b64(12) + 1 + 1 + b64(16);
  return Buffer.byteLength('{"type":"encrypted","jwe":""}') + jweWithoutCiphertext;
})();

/** The size of a frame of `plainBytes` once sealed as `{"type":"encrypted","jwe"}`. */
export function encryptedFrameBytes(plainBytes: number): number {
  return ENVELOPE_BYTES + Math.ceil((plainBytes * 4) / 3);
}

/**
 * Drops the oldest items of `frame[list]` (the newest, with `drop: 'newest'`) until the
 * whole serialized frame (sealed, when `encrypted`) fits within `limit`, keeping the rest
 * in order. Everything else in the frame counts against the limit, whatever fields it has.
 */
export function fitFrame<T extends object>(
  frame: T,
  list: keyof T & string,
  options: { encrypted: boolean; limit?: number; drop?: 'oldest' | 'newest' },
): T {
  const items = frame[list];
  if (!Array.isArray(items) || items.length === 0) return frame;
  const limit = options.limit ?? MAX_OUTGOING_FRAME_BYTES;
  const fits = (bytes: number) => (options.encrypted ? encryptedFrameBytes(bytes) : bytes) <= limit;
  let total = Buffer.byteLength(JSON.stringify({ ...frame, [list]: [] }));
  const newestFirst = options.drop !== 'newest';
  let kept = 0;
  for (let n = 0; n < items.length; n++) {
    const item = items[newestFirst ? items.length - 1 - n : n];
    const add = Buffer.byteLength(JSON.stringify(item)) + (kept > 0 ? 1 : 0);
    if (!fits(total + add)) break;
    total += add;
    kept++;
  }
  if (kept === items.length) return frame;
  return { ...frame, [list]: newestFirst ? items.slice(items.length - kept) : items.slice(0, kept) };
}
