import { importMessageKey, openJwe, sealJwe } from '../lambdas/core/jwe.ts';

/**
 * Payload encryption for servers with `messageEncryption` on: each frame travels as
 * `{"type":"encrypted","jwe":J}`, J a compact JWE (`dir`, `A256GCM`) under the
 * session's `message_key`. The framing is the server's own (`lambdas/core/jwe.ts`, WebCrypto).
 */
export class FrameCipher {
  readonly #key: Promise<CryptoKey>;

  /** `messageKey`: the base64url 256-bit key from the login or refresh response. */
  constructor(messageKey: string) {
    this.#key = importMessageKey(messageKey);
    // Awaited by each use; a key WebCrypto refused would otherwise go unhandled meanwhile.
    this.#key.catch(() => {});
  }

  async encrypt(plaintext: string): Promise<string> {
    return sealJwe(await this.#key, plaintext);
  }

  /** Decrypts a compact JWE; only `dir` with `A256GCM` is accepted. */
  async decrypt(jwe: string): Promise<string> {
    return new TextDecoder().decode(await openJwe(this.#key, jwe));
  }
}
