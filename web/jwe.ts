import { base64url, CompactEncrypt, compactDecrypt } from 'jose';

/**
 * Payload encryption for servers with `messageEncryption` on: each frame travels as
 * `{"type":"encrypted","jwe":J}`, J a compact JWE (`dir`, `A256GCM`) under the
 * session's `message_key`.
 */
export class FrameCipher {
  readonly #key: Uint8Array;

  /** `messageKey`: the base64url 256-bit key from the login or refresh response. */
  constructor(messageKey: string) {
    let key: Uint8Array;
    try {
      key = base64url.decode(messageKey);
    } catch {
      throw new TypeError('message_key is not base64url');
    }
    if (key.length !== 32) throw new TypeError('message_key must be 256 bits');
    this.#key = key;
  }

  encrypt(plaintext: string): Promise<string> {
    return new CompactEncrypt(new TextEncoder().encode(plaintext))
      .setProtectedHeader({ alg: 'dir', enc: 'A256GCM' })
      .encrypt(this.#key);
  }

  /** Decrypts a compact JWE; only `dir` with `A256GCM` is accepted. */
  async decrypt(jwe: string): Promise<string> {
    const { plaintext } = await compactDecrypt(jwe, this.#key, {
      keyManagementAlgorithms: ['dir'],
      contentEncryptionAlgorithms: ['A256GCM'],
    });
    return new TextDecoder().decode(plaintext);
  }
}
