import { randomBytes } from 'node:crypto';
import { base64url, CompactEncrypt, compactDecrypt } from 'jose';
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

/** The plaintext of a client's JWE; only `dir` + `A256GCM` under the session's key. */
export async function decryptFrame(key: string, jwe: string): Promise<string> {
  try {
    const { plaintext } = await compactDecrypt(jwe, keyBytes(key), {
      keyManagementAlgorithms: ['dir'],
      contentEncryptionAlgorithms: ['A256GCM'],
    });
    return decoder.decode(plaintext);
  } catch {
    throw new AppError('invalid_request', 'the encrypted frame cannot be decrypted with this session key');
  }
}
