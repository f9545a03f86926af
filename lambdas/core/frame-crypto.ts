import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import { AppError } from './errors.ts';

const KEY = /^[A-Za-z0-9_-]{43}$/;
const B64URL = /^[A-Za-z0-9_-]*$/;
/** `{"alg":"dir","enc":"A256GCM"}`, the one protected header this product writes. */
const PROTECTED = Buffer.from(JSON.stringify({ alg: 'dir', enc: 'A256GCM' })).toString('base64url');
const IV_BYTES = 12;
const TAG_BYTES = 16;

/** A per-session 256-bit key for JWE payloads (base64url), handed out at login. */
export function newMessageKey(): string {
  return randomBytes(32).toString('base64url');
}

function keyBytes(key: string): Buffer {
  if (!KEY.test(key)) throw new Error('a message key is 256 bits, base64url');
  return Buffer.from(key, 'base64url');
}

/**
 * A frame as `{"type":"encrypted","jwe"}`: compact JWE (RFC 7516), `dir` + `A256GCM`, under the
 * session's key. Written with node:crypto: the one JWE shape the product uses does not need a
 * general JOSE library in every function that posts to sockets.
 */
export async function encryptFrame(key: string, frame: unknown): Promise<{ type: 'encrypted'; jwe: string }> {
  const iv = randomBytes(IV_BYTES);
  const cipher = createCipheriv('aes-256-gcm', keyBytes(key), iv, { authTagLength: TAG_BYTES });
  // The additional authenticated data is the ASCII of the encoded protected header.
  cipher.setAAD(Buffer.from(PROTECTED, 'ascii'));
  const ciphertext = Buffer.concat([cipher.update(JSON.stringify(frame), 'utf8'), cipher.final()]);
  const jwe = [PROTECTED, '', iv, ciphertext, cipher.getAuthTag()]
    .map((part) => (typeof part === 'string' ? part : part.toString('base64url')))
    .join('.');
  return { type: 'encrypted', jwe };
}

/**
 * The plaintext of a client's compact JWE: only `dir` + `A256GCM` under the session's key, no
 * encrypted key, a 96-bit IV and a 128-bit tag; a `crit` header is refused, as is anything that
 * does not decrypt and authenticate. A `zip` (compression) header is refused before decrypting,
 * with its own message: a frame within the limit could otherwise inflate to any size. The
 * plaintext is held to `maxBytes`, like a plain frame.
 */
export async function decryptFrame(key: string, jwe: string, maxBytes: number): Promise<string> {
  const refuse = () =>
    new AppError('invalid_request', 'the encrypted frame cannot be decrypted with this session key');
  const parts = jwe.split('.');
  if (parts.length !== 5 || !parts.every((p) => B64URL.test(p))) throw refuse();
  const [protectedHeader = '', encryptedKey, ivText = '', ciphertextText = '', tagText = ''] = parts;
  let header: Record<string, unknown>;
  try {
    header = JSON.parse(Buffer.from(protectedHeader, 'base64url').toString('utf8')) as Record<
      string,
      unknown
    >;
  } catch {
    throw refuse();
  }
  if (typeof header !== 'object' || header === null || Array.isArray(header)) throw refuse();
  if ('zip' in header) {
    throw new AppError('invalid_request', 'compressed (zip) JWE payloads are not accepted');
  }
  if (header.alg !== 'dir' || header.enc !== 'A256GCM' || 'crit' in header || encryptedKey !== '') {
    throw refuse();
  }
  const iv = Buffer.from(ivText, 'base64url');
  const tag = Buffer.from(tagText, 'base64url');
  if (iv.length !== IV_BYTES || tag.length !== TAG_BYTES) throw refuse();
  let plaintext: Buffer;
  try {
    const decipher = createDecipheriv('aes-256-gcm', keyBytes(key), iv, { authTagLength: TAG_BYTES });
    decipher.setAAD(Buffer.from(protectedHeader, 'ascii'));
    decipher.setAuthTag(tag);
    plaintext = Buffer.concat([decipher.update(Buffer.from(ciphertextText, 'base64url')), decipher.final()]);
  } catch {
    throw refuse();
  }
  if (plaintext.byteLength > maxBytes) {
    throw new AppError('too_large', `frames are limited to ${maxBytes} bytes, decrypted too`);
  }
  try {
    return new TextDecoder('utf-8', { fatal: true }).decode(plaintext);
  } catch {
    throw refuse();
  }
}
