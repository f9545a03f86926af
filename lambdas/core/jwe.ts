/**
 * The compact JWE (RFC 7516) of encrypted frames, `dir` + `A256GCM` under a session's 256-bit
 * message key: the one shape the product writes and reads, on both sides. WebCrypto only (no
 * Node modules, no JOSE library), so that the server's functions and the browser client share
 * this code and neither carries a general JOSE library for it.
 */

/** `{"alg":"dir","enc":"A256GCM"}`, the one protected header this product writes. */
const PROTECTED = 'eyJhbGciOiJkaXIiLCJlbmMiOiJBMjU2R0NNIn0';
const KEY = /^[A-Za-z0-9_-]{43}$/;
const B64URL = /^[A-Za-z0-9_-]*$/;
const ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
const IV_BYTES = 12;
const TAG_BYTES = 16;

/** Why a compact JWE was refused: `zip` (compression) has its own reason, checked before decrypting. */
export type JweRefusal = 'zip' | 'invalid';

export class JweError extends Error {
  override readonly name = 'JweError';
  constructor(readonly reason: JweRefusal) {
    super(
      reason === 'zip' ? 'compressed (zip) JWE payloads are not accepted' : 'the JWE cannot be decrypted',
    );
  }
}

/** Base64url without padding. */
export function encodeBase64url(bytes: Uint8Array): string {
  let out = '';
  let bits = 0;
  let value = 0;
  for (const byte of bytes) {
    value = ((value << 8) | byte) & 0xffff;
    bits += 8;
    while (bits >= 6) {
      bits -= 6;
      out += ALPHABET[(value >> bits) & 63];
    }
  }
  if (bits > 0) out += ALPHABET[(value << (6 - bits)) & 63];
  return out;
}

/**
 * Decodes base64url (characters checked by the caller). Like Node's `Buffer`, a lone last
 * character and the unused low bits of the last one are ignored.
 */
export function decodeBase64url(text: string): Uint8Array<ArrayBuffer> {
  const out = new Uint8Array(Math.floor((text.length * 6) / 8));
  let bits = 0;
  let value = 0;
  let n = 0;
  for (const char of text) {
    value = ((value << 6) | ALPHABET.indexOf(char)) & 0xffff;
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out[n++] = (value >> bits) & 0xff;
    }
  }
  return out.subarray(0, n);
}

/** A session's message key (base64url, 256 bits) as an AES-GCM key; a `TypeError` for anything else. */
export function importMessageKey(messageKey: string): Promise<CryptoKey> {
  if (!KEY.test(messageKey)) throw new TypeError('a message key is 256 bits, base64url');
  return crypto.subtle.importKey('raw', decodeBase64url(messageKey), 'AES-GCM', false, [
    'encrypt',
    'decrypt',
  ]);
}

/** `plaintext` (UTF-8) as a compact JWE, `dir` + `A256GCM`, with a fresh 96-bit IV. */
export async function sealJwe(key: CryptoKey, plaintext: string): Promise<string> {
  const iv = crypto.getRandomValues(new Uint8Array(IV_BYTES));
  // The additional authenticated data is the ASCII of the encoded protected header.
  const sealed = new Uint8Array(
    await crypto.subtle.encrypt(
      { name: 'AES-GCM', iv, additionalData: ascii(PROTECTED), tagLength: TAG_BYTES * 8 },
      key,
      new TextEncoder().encode(plaintext),
    ),
  );
  const ciphertext = sealed.subarray(0, sealed.length - TAG_BYTES);
  const tag = sealed.subarray(sealed.length - TAG_BYTES);
  return [PROTECTED, '', encodeBase64url(iv), encodeBase64url(ciphertext), encodeBase64url(tag)].join('.');
}

/**
 * The plaintext bytes of a compact JWE: only `dir` + `A256GCM`, no encrypted key, a 96-bit IV
 * and a 128-bit tag; a `crit` header is refused, as is anything that does not decrypt and
 * authenticate. A `zip` header is refused before decrypting (`reason: 'zip'`): a small frame
 * could otherwise inflate to any size. `key` is awaited only once the framing has passed.
 */
export async function openJwe(key: CryptoKey | Promise<CryptoKey>, jwe: string): Promise<Uint8Array> {
  const parts = jwe.split('.');
  if (parts.length !== 5 || !parts.every((p) => B64URL.test(p))) throw new JweError('invalid');
  const [protectedHeader = '', encryptedKey, ivText = '', ciphertextText = '', tagText = ''] = parts;
  checkHeader(protectedHeader);
  if (encryptedKey !== '') throw new JweError('invalid');
  const iv = decodeBase64url(ivText);
  const tag = decodeBase64url(tagText);
  if (iv.length !== IV_BYTES || tag.length !== TAG_BYTES) throw new JweError('invalid');
  const ciphertext = decodeBase64url(ciphertextText);
  const sealed = new Uint8Array(ciphertext.length + TAG_BYTES);
  sealed.set(ciphertext);
  sealed.set(tag, ciphertext.length);
  try {
    return new Uint8Array(
      await crypto.subtle.decrypt(
        { name: 'AES-GCM', iv, additionalData: ascii(protectedHeader), tagLength: TAG_BYTES * 8 },
        await key,
        sealed,
      ),
    );
  } catch {
    throw new JweError('invalid');
  }
}

function checkHeader(encoded: string): void {
  let header: unknown;
  try {
    header = JSON.parse(new TextDecoder().decode(decodeBase64url(encoded)));
  } catch {
    throw new JweError('invalid');
  }
  if (typeof header !== 'object' || header === null || Array.isArray(header)) throw new JweError('invalid');
  if ('zip' in header) throw new JweError('zip');
  const { alg, enc } = header as Record<string, unknown>;
  if (alg !== 'dir' || enc !== 'A256GCM' || 'crit' in header) throw new JweError('invalid');
}

function ascii(text: string): Uint8Array<ArrayBuffer> {
  return Uint8Array.from(text, (c) => c.charCodeAt(0));
}
