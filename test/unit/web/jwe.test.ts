import { base64url, CompactEncrypt, compactDecrypt, decodeProtectedHeader } from 'jose';
import { describe, expect, it } from 'vitest';
import { FrameCipher } from '../../../web/jwe.ts';

const key = crypto.getRandomValues(new Uint8Array(32));
const messageKey = base64url.encode(key);

describe('FrameCipher', () => {
  it('writes compact JWEs (dir, A256GCM) that jose decrypts', async () => {
    const jwe = await new FrameCipher(messageKey).encrypt('{"type":"ping"}');
    expect(jwe.split('.')).toHaveLength(5);
    expect(decodeProtectedHeader(jwe)).toEqual({ alg: 'dir', enc: 'A256GCM' });
    const { plaintext } = await compactDecrypt(jwe, key);
    expect(new TextDecoder().decode(plaintext)).toBe('{"type":"ping"}');
  });

  it('reads what jose encrypts', async () => {
    const jwe = await new CompactEncrypt(new TextEncoder().encode('{"type":"pong"}'))
      .setProtectedHeader({ alg: 'dir', enc: 'A256GCM' })
      .encrypt(key);
    await expect(new FrameCipher(messageKey).decrypt(jwe)).resolves.toBe('{"type":"pong"}');
  });

  it('refuses another key, another algorithm and a tampered ciphertext', async () => {
    const cipher = new FrameCipher(messageKey);
    const other = await new FrameCipher(base64url.encode(new Uint8Array(32))).encrypt('x');
    await expect(cipher.decrypt(other)).rejects.toThrow();
    const a128 = await new CompactEncrypt(new TextEncoder().encode('x'))
      .setProtectedHeader({ alg: 'dir', enc: 'A128GCM' })
      .encrypt(key.slice(0, 16));
    await expect(cipher.decrypt(a128)).rejects.toThrow();
    const parts = (await cipher.encrypt('hello')).split('.');
    parts[3] = base64url.encode(new Uint8Array(base64url.decode(parts[3] ?? '').map((b) => b ^ 1)));
    await expect(cipher.decrypt(parts.join('.'))).rejects.toThrow();
  });

  it.each([
    ['not base64url', '***'],
    ['128 bits', base64url.encode(new Uint8Array(16))],
    ['empty', ''],
  ])('refuses a message_key that is %s', (_name, bad) => {
    expect(() => new FrameCipher(bad)).toThrow(TypeError);
  });
});
