import { base64url, CompactEncrypt, compactDecrypt } from 'jose';
import { describe, expect, it, vi } from 'vitest';
import {
  decryptFrame,
  encryptFrame,
  encryptText,
  newMessageKey,
} from '../../../lambdas/core/frame-crypto.ts';
import { encodePart } from '../../kit/forge.ts';

const key = newMessageKey();
/** At the default frame limit. */
const decrypt = (k: string, jwe: string) => decryptFrame(k, jwe, 8192);
const other = newMessageKey();
const joseEncrypt = (
  text: string,
  header: Record<string, unknown> = { alg: 'dir', enc: 'A256GCM' },
  k = key,
) =>
  new CompactEncrypt(new TextEncoder().encode(text))
    // biome-ignore lint/suspicious/noExplicitAny: hostile headers on purpose
    .setProtectedHeader(header as any)
    .encrypt(base64url.decode(k));

/** Rewrites one part of a compact JWE. */
const withPart = (jwe: string, index: number, value: string) =>
  jwe
    .split('.')
    .map((p, i) => (i === index ? value : p))
    .join('.');

describe('frame encryption', () => {
  it('imports a session key once for its frames both ways, and seals serialized text as encryptFrame does', async () => {
    const fresh = newMessageKey();
    const imports = vi.spyOn(crypto.subtle, 'importKey');
    try {
      const sealed = await encryptText(fresh, '{"type":"pong"}');
      expect(sealed.type).toBe('encrypted');
      expect(await decrypt(fresh, sealed.jwe)).toBe('{"type":"pong"}');
      expect(await decrypt(fresh, (await encryptFrame(fresh, { type: 'pong' })).jwe)).toBe('{"type":"pong"}');
      expect(imports).toHaveBeenCalledTimes(1);
    } finally {
      imports.mockRestore();
    }
  });

  it('refuses a malformed session key every time, however often it is tried', async () => {
    for (let i = 0; i < 2; i++) {
      await expect(encryptText('short', '{}')).rejects.toThrow(TypeError);
      await expect(decrypt('short', (await encryptFrame(key, {})).jwe)).rejects.toMatchObject({
        code: 'invalid_request',
      });
    }
  });

  it('writes a compact JWE that jose decrypts, dir + A256GCM', async () => {
    const { type, jwe } = await encryptFrame(key, { type: 'pong', text: 'é 漢字' });
    expect(type).toBe('encrypted');
    const { plaintext, protectedHeader } = await compactDecrypt(jwe, base64url.decode(key), {
      keyManagementAlgorithms: ['dir'],
      contentEncryptionAlgorithms: ['A256GCM'],
    });
    expect(protectedHeader).toEqual({ alg: 'dir', enc: 'A256GCM' });
    expect(JSON.parse(new TextDecoder().decode(plaintext))).toEqual({ type: 'pong', text: 'é 漢字' });
    // A fresh IV each time.
    expect((await encryptFrame(key, {})).jwe).not.toBe((await encryptFrame(key, {})).jwe);
  });

  it("reads a client's JWE written by jose, extra header members such as kid included", async () => {
    expect(await decrypt(key, await joseEncrypt('{"type":"ping"}'))).toBe('{"type":"ping"}');
    expect(await decrypt(key, await joseEncrypt('x', { alg: 'dir', enc: 'A256GCM', kid: 'k1' }))).toBe('x');
    expect(await decrypt(key, (await encryptFrame(key, [1, 2])).jwe)).toBe('[1,2]');
  });

  const hostile: [string, () => Promise<string>][] = [
    ['another session key', () => joseEncrypt('x', undefined, other)],
    [
      'another content encryption',
      async () => withPart(await joseEncrypt('x'), 0, encodePart({ alg: 'dir', enc: 'A128GCM' })),
    ],
    [
      'a zip header',
      async () => withPart(await joseEncrypt('x'), 0, encodePart({ alg: 'dir', enc: 'A256GCM', zip: 'DEF' })),
    ],
    [
      'a crit header',
      async () =>
        withPart(
          await joseEncrypt('x'),
          0,
          encodePart({ alg: 'dir', enc: 'A256GCM', crit: ['b64'], b64: true }),
        ),
    ],
    [
      'another key management',
      async () => withPart(await joseEncrypt('x'), 0, encodePart({ alg: 'A256KW', enc: 'A256GCM' })),
    ],
    [
      'an encrypted key where dir has none',
      async () => withPart(await joseEncrypt('x'), 1, encodePart('0123456789abcdef')),
    ],
    ['a header that is not JSON', async () => withPart(await joseEncrypt('x'), 0, encodePart('{alg:dir'))],
    ['a header that is an array', async () => withPart(await joseEncrypt('x'), 0, encodePart(['dir']))],
    [
      'a header edited after encryption (AAD)',
      async () => withPart(await joseEncrypt('x'), 0, encodePart({ enc: 'A256GCM', alg: 'dir' })),
    ],
    ['a short IV', async () => withPart(await joseEncrypt('x'), 2, encodePart('0123456789a'))],
    [
      'a truncated tag',
      async () => {
        const j = await joseEncrypt('x');
        return withPart(j, 4, j.split('.')[4]?.slice(0, 16) ?? '');
      },
    ],
    [
      'a flipped ciphertext',
      async () => {
        const j = await joseEncrypt('hello');
        const c = j.split('.')[3] ?? '';
        return withPart(j, 3, (c[0] === 'A' ? 'B' : 'A') + c.slice(1));
      },
    ],
    ['four parts', async () => (await joseEncrypt('x')).split('.').slice(0, 4).join('.')],
    ['characters outside base64url', async () => withPart(await joseEncrypt('x'), 3, 'ab+/')],
    ['an empty string', async () => ''],
    [
      'a plaintext that is not UTF-8',
      async () => {
        const raw = new CompactEncrypt(new Uint8Array([0xff, 0xfe])).setProtectedHeader({
          alg: 'dir',
          enc: 'A256GCM',
        });
        return raw.encrypt(base64url.decode(key));
      },
    ],
  ];
  for (const [what, make] of hostile) {
    it(`refuses ${what} with invalid_request`, async () => {
      await expect(decrypt(key, await make())).rejects.toMatchObject({ code: 'invalid_request' });
    });
  }
});

describe('decryptFrame limits', () => {
  it('names a zip header in its refusal, whatever its value, before decrypting', async () => {
    for (const zip of ['DEF', 'NONE']) {
      const jwe = withPart(
        await joseEncrypt('x'.repeat(1000)),
        0,
        encodePart({ alg: 'dir', enc: 'A256GCM', zip }),
      );
      await expect(decrypt(key, jwe)).rejects.toMatchObject({
        code: 'invalid_request',
        message: expect.stringMatching(/zip/),
      });
    }
  });

  it('holds the plaintext to the frame limit', async () => {
    const jwe = await joseEncrypt('y'.repeat(200));
    await expect(decryptFrame(key, jwe, 199)).rejects.toMatchObject({ code: 'too_large' });
    expect(await decryptFrame(key, jwe, 200)).toHaveLength(200);
  });
});
