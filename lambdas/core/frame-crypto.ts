import { randomBytes } from 'node:crypto';
import { base64url, CompactEncrypt, compactDecrypt, decodeProtectedHeader } from 'jose';
import { AppError } from './errors.ts';

const KEY = /^[A-Za-z0-9_-]{43}$/;
const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** A per-session 256-bit key for JWE payloads (base64url), handed out at login. */
export function newMessageKey(): string {
  return randomBytes(32).toString('base64url');
}

function keyBytes(key: string): Uint8Array {
  if (!KEY.test(key)) throw new Error('a message key is 256 bits, base64url');
  return base64url.decode(key);
}

/** A frame as `{"type":"encrypted","jwe"}`: compact JWE, `dir` + `A256GCM`, under the session's key. */
export async function encryptFrame(key: string, frame: unknown): Promise<{ type: 'encrypted'; jwe: string }> {
  const jwe = await new CompactEncrypt(encoder.encode(JSON.stringify(frame)))
    .setProtectedHeader({ alg: 'dir', enc: 'A256GCM' })
    .encrypt(keyBytes(key));
  return { type: 'encrypted', jwe };
}

/**
 * The plaintext of a client's JWE; only `dir` + `A256GCM` under the session's key, held
 * to `maxBytes` like a plain frame. A `zip` header is refused before decrypting:
 * compression would let a frame within the limit inflate to any size.
 */
export async function decryptFrame(key: string, jwe: string, maxBytes: number): Promise<string> {
  let header: Record<string, unknown>;
  try {
    header = decodeProtectedHeader(jwe) as Record<string, unknown>;
  } catch {
    throw new AppError('invalid_request', 'the encrypted frame is not a compact JWE');
  }
  if ('zip' in header)
    throw new AppError('invalid_request', 'compressed (zip) JWE payloads are not accepted');
  let plaintext: Uint8Array;
  try {
    ({ plaintext } = await compactDecrypt(jwe, keyBytes(key), {
      keyManagementAlgorithms: ['dir'],
      contentEncryptionAlgorithms: ['A256GCM'],
    }));
  } catch {
    throw new AppError('invalid_request', 'the encrypted frame cannot be decrypted with this session key');
  }
  if (plaintext.byteLength > maxBytes) {
    throw new AppError('too_large', `frames are limited to ${maxBytes} bytes, decrypted too`);
  }
  return decoder.decode(plaintext);
}
