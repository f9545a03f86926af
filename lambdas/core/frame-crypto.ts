import { AppError } from './errors.ts';
import { encodeBase64url, importMessageKey, JweError, openJwe, sealJwe } from './jwe.ts';

/** A per-session 256-bit key for JWE payloads (base64url), handed out at login. */
export function newMessageKey(): string {
  return encodeBase64url(crypto.getRandomValues(new Uint8Array(32)));
}

/** Imported keys kept per container, so a session's key is imported once, not once per frame. */
const MAX_KEPT_KEYS = 1024;
const keptKeys = new Map<string, Promise<CryptoKey>>();

/** The session's key as an AES-GCM key, imported once while it is among the last ones used. */
function sessionKey(key: string): Promise<CryptoKey> {
  let imported = keptKeys.get(key);
  if (imported) {
    keptKeys.delete(key); // moved to the back: the first entry is the one used longest ago
  } else {
    imported = importMessageKey(key);
    imported.catch(() => keptKeys.delete(key));
    if (keptKeys.size >= MAX_KEPT_KEYS) keptKeys.delete(keptKeys.keys().next().value as string);
  }
  keptKeys.set(key, imported);
  return imported;
}

/**
 * A frame as `{"type":"encrypted","jwe"}`: compact JWE (RFC 7516), `dir` + `A256GCM`, under the
 * session's key. The framing is `jwe.ts`, which the web client shares: the one JWE shape the
 * product uses does not need a general JOSE library in every function that posts to sockets.
 */
export function encryptFrame(key: string, frame: unknown): Promise<{ type: 'encrypted'; jwe: string }> {
  return encryptText(key, JSON.stringify(frame));
}

/** `encryptFrame` of a frame already serialized (fan-out serializes a frame once for all its sockets). */
export async function encryptText(key: string, text: string): Promise<{ type: 'encrypted'; jwe: string }> {
  return { type: 'encrypted', jwe: await sealJwe(await sessionKey(key), text) };
}

/**
 * The plaintext of a client's compact JWE (see `openJwe` for what is refused) as an
 * `invalid_request`, a `zip` header with its own message. The plaintext is held to `maxBytes`,
 * like a plain frame, and must be UTF-8.
 */
export async function decryptFrame(key: string, jwe: string, maxBytes: number): Promise<string> {
  let plaintext: Uint8Array;
  try {
    plaintext = await openJwe(sessionKey(key), jwe);
  } catch (err) {
    if (err instanceof JweError && err.reason === 'zip') {
      throw new AppError('invalid_request', 'compressed (zip) JWE payloads are not accepted');
    }
    throw refused();
  }
  if (plaintext.byteLength > maxBytes) {
    throw new AppError('too_large', `frames are limited to ${maxBytes} bytes, decrypted too`);
  }
  try {
    return new TextDecoder('utf-8', { fatal: true }).decode(plaintext);
  } catch {
    throw refused();
  }
}

function refused(): AppError {
  return new AppError('invalid_request', 'the encrypted frame cannot be decrypted with this session key');
}
