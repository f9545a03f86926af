import { base64url, CompactEncrypt } from 'jose';
import { describe, expect, it } from 'vitest';
import {
  decodeBase64url,
  encodeBase64url,
  importMessageKey,
  JweError,
  openJwe,
  sealJwe,
} from '../../../lambdas/core/jwe.ts';

const raw = crypto.getRandomValues(new Uint8Array(32));
const messageKey = base64url.encode(raw);

describe('base64url', () => {
  it('encodes and decodes as Buffer does, for every length up to 40 bytes', () => {
    for (let n = 0; n <= 40; n++) {
      const bytes = crypto.getRandomValues(new Uint8Array(n));
      const text = encodeBase64url(bytes);
      expect(text).toBe(Buffer.from(bytes).toString('base64url'));
      expect(Buffer.from(decodeBase64url(text))).toEqual(Buffer.from(bytes));
    }
  });

  it('ignores a lone last character and unused low bits, like Buffer', () => {
    for (const text of ['A', 'AAAAA', 'AB', 'ABC', 'AP_', 'ab-_z']) {
      expect(Buffer.from(decodeBase64url(text))).toEqual(Buffer.from(text, 'base64url'));
    }
  });
});

describe('compact JWE', () => {
  it('opens what it seals, with the one protected header and a fresh IV each time', async () => {
    const key = await importMessageKey(messageKey);
    const a = await sealJwe(key, '{"type":"ping","text":"é 漢字"}');
    const b = await sealJwe(key, '{"type":"ping","text":"é 漢字"}');
    expect(a).not.toBe(b);
    expect(a.split('.')[0]).toBe(base64url.encode(JSON.stringify({ alg: 'dir', enc: 'A256GCM' })));
    expect(a.split('.')[1]).toBe('');
    expect(new TextDecoder().decode(await openJwe(key, a))).toBe('{"type":"ping","text":"é 漢字"}');
  });

  it('opens a JWE written by jose', async () => {
    const jwe = await new CompactEncrypt(new TextEncoder().encode('hi'))
      .setProtectedHeader({ alg: 'dir', enc: 'A256GCM' })
      .encrypt(raw);
    expect(new TextDecoder().decode(await openJwe(importMessageKey(messageKey), jwe))).toBe('hi');
  });

  it('names a zip header as its own refusal and everything else as invalid', async () => {
    const key = await importMessageKey(messageKey);
    const zip = `${base64url.encode(JSON.stringify({ alg: 'dir', enc: 'A256GCM', zip: 'DEF' }))}..AAAAAAAAAAAAAAAA.AA.AAAAAAAAAAAAAAAAAAAAAA`;
    await expect(openJwe(key, zip)).rejects.toMatchObject({ reason: 'zip' });
    await expect(openJwe(key, 'a.b.c')).rejects.toBeInstanceOf(JweError);
    await expect(openJwe(key, 'a.b.c')).rejects.toMatchObject({ reason: 'invalid' });
  });

  it.each([
    ['not base64url', '***'],
    ['128 bits', base64url.encode(new Uint8Array(16))],
    ['empty', ''],
  ])('refuses a message key that is %s with a TypeError', (_name, bad) => {
    expect(() => importMessageKey(bad)).toThrow(TypeError);
  });
});
