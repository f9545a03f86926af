import { base64url, CompactEncrypt } from 'jose';
import { describe, expect, it } from 'vitest';
import { decryptFrame, encryptFrame, newMessageKey } from '../../../lambdas/core/frame-crypto.ts';

const encode = (text: string) => new TextEncoder().encode(text);

async function jweOf(key: string, text: string, header: Record<string, unknown>): Promise<string> {
  return new CompactEncrypt(encode(text))
    .setProtectedHeader({ alg: 'dir', enc: 'A256GCM', ...header })
    .encrypt(base64url.decode(key));
}

describe('decryptFrame', () => {
  it('opens what encryptFrame sealed', async () => {
    const key = newMessageKey();
    const { jwe } = await encryptFrame(key, { type: 'ping' });
    expect(JSON.parse(await decryptFrame(key, jwe, 8192))).toEqual({ type: 'ping' });
  });

  it('refuses a zip header before decrypting, whatever its value', async () => {
    const key = newMessageKey();
    for (const zip of ['DEF', 'NONE']) {
      const jwe = zip === 'DEF' ? await jweOf(key, 'x'.repeat(100_000), { zip }) : await jweOf(key, 'x', {});
      const forged =
        zip === 'DEF'
          ? jwe
          : `${base64url.encode(JSON.stringify({ alg: 'dir', enc: 'A256GCM', zip }))}${jwe.slice(jwe.indexOf('.'))}`;
      await expect(decryptFrame(key, forged, 8192)).rejects.toMatchObject({
        code: 'invalid_request',
        message: expect.stringMatching(/zip/),
      });
    }
  });

  it('holds the plaintext to the frame limit', async () => {
    const key = newMessageKey();
    const jwe = await jweOf(key, 'y'.repeat(200), {});
    await expect(decryptFrame(key, jwe, 199)).rejects.toMatchObject({ code: 'too_large' });
    expect(await decryptFrame(key, jwe, 200)).toHaveLength(200);
  });

  it('refuses what is not a compact JWE, or another key', async () => {
    const key = newMessageKey();
    await expect(decryptFrame(key, 'a.b.c.d.e', 8192)).rejects.toMatchObject({ code: 'invalid_request' });
    const jwe = await jweOf(newMessageKey(), 'z', {});
    await expect(decryptFrame(key, jwe, 8192)).rejects.toMatchObject({ code: 'invalid_request' });
  });
});
