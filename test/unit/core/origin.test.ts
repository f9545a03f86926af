import { describe, expect, it } from 'vitest';
import { isOriginAllowed, normalizeOrigin } from '../../../lambdas/core/origin.ts';
import { parseSettings } from '../../../lambdas/core/settings.ts';

const ALLOWLIST = ['https://app.example.com', 'http://localhost:3000'];

describe('isOriginAllowed', () => {
  for (const origin of [
    'https://app.example.com',
    'https://APP.Example.COM',
    'https://app.example.com:443',
    'http://localhost:3000',
    'http://LOCALHOST:3000',
  ]) {
    it(`allows ${origin}`, () => {
      expect(isOriginAllowed(origin, ALLOWLIST)).toBe(true);
    });
  }

  const hostile: [string, string][] = [
    ['a suffix host', 'https://app.example.com.evil.com'],
    ['a prefix host', 'https://evilapp.example.com'],
    ['a sibling subdomain', 'https://evil.app.example.com'],
    ['the parent domain', 'https://example.com'],
    ['a trailing-dot host', 'https://app.example.com.'],
    ['another port', 'https://app.example.com:8443'],
    ['another port on localhost', 'http://localhost:3001'],
    ['no port on localhost', 'http://localhost'],
    ['another scheme', 'http://app.example.com'],
    ['another scheme on localhost', 'https://localhost:3000'],
    ['a websocket scheme', 'wss://app.example.com'],
    ['the opaque null origin', 'null'],
    ['an empty value', ''],
    ['a trailing slash', 'https://app.example.com/'],
    ['a path', 'https://app.example.com/login'],
    ['a query', 'https://app.example.com?x=1'],
    ['a fragment', 'https://app.example.com#x'],
    ['user-info before an attacker host', 'https://app.example.com@evil.com'],
    ['user-info before our host', 'https://evil.com@app.example.com'],
    ['a backslash trick', 'https://evil.com\\@app.example.com'],
    ['a Cyrillic look-alike letter', 'https://\u0430pp.example.com'],
    ['its punycode form', 'https://xn--pp-8cd.example.com'],
    ['a full-width letter', 'https://\uff41pp.example.com'],
    ['a tab inside the host', 'https://app.exa\tmple.com'],
    ['a newline inside the host', 'https://app.exa\nmple.com'],
    ['a trailing newline', 'https://app.example.com\n'],
    ['a trailing CRLF', 'https://app.example.com\r\n'],
    ['a leading space', ' https://app.example.com'],
    ['a trailing space', 'https://app.example.com '],
    ['a trailing NUL', 'https://app.example.com\u0000'],
    ['an empty port', 'https://app.example.com:'],
    ['port 0', 'https://app.example.com:0'],
    ['a port out of range', 'https://app.example.com:65979'],
    ['two origins joined by a comma', 'https://app.example.com,https://evil.com'],
    ['two origins joined by a space', 'https://app.example.com https://evil.com'],
    ['our origin after an attacker one', 'https://evil.com https://app.example.com'],
    ['a scheme-relative host', '//app.example.com'],
    ['a bare host', 'app.example.com'],
    ['a single-slash scheme', 'https:/app.example.com'],
    ['a wildcard', '*'],
  ];
  for (const [label, origin] of hostile) {
    it(`refuses ${label}: ${JSON.stringify(origin)}`, () => {
      expect(isOriginAllowed(origin, ALLOWLIST)).toBe(false);
    });
  }

  it('refuses everything against an empty allowlist', () => {
    expect(isOriginAllowed('https://app.example.com', [])).toBe(false);
  });

  it('matches an origin against an allowlist written in any case and with its default port', () => {
    const s = parseSettings(
      (name) => (name === 'allowedOrigins' ? 'HTTPS://App.Example.com:443' : undefined),
      'local',
    );
    expect(isOriginAllowed('https://app.example.com', s.allowedOrigins)).toBe(true);
    expect(isOriginAllowed('https://app.example.com.evil.com', s.allowedOrigins)).toBe(false);
  });
});

describe('normalizeOrigin', () => {
  for (const [raw, canonical] of [
    ['HTTPS://App.Example.com:443', 'https://app.example.com'],
    ['http://app.example.com:80', 'http://app.example.com'],
    ['http://app.example.com:443', 'http://app.example.com:443'],
    ['https://app.example.com:80', 'https://app.example.com:80'],
    ['http://localhost:3000', 'http://localhost:3000'],
    ['http://127.0.0.1:3000', 'http://127.0.0.1:3000'],
    ['http://[::1]:3000', 'http://[::1]:3000'],
  ] as const) {
    it(`writes ${raw} as ${canonical}`, () => {
      expect(normalizeOrigin(raw)).toBe(canonical);
    });
  }

  it('gives one origin one spelling', () => {
    const spellings = ['https://app.example.com', 'HTTPS://APP.EXAMPLE.COM', 'https://app.example.com:443'];
    expect(new Set(spellings.map(normalizeOrigin))).toEqual(new Set(['https://app.example.com']));
  });

  it('returns nothing for a value that is not exactly an origin', () => {
    for (const raw of [
      'null',
      '',
      'https://app.example.com/',
      'https://a@b.com',
      'https://\u0430pp.com',
      'a b',
    ]) {
      expect(normalizeOrigin(raw), JSON.stringify(raw)).toBeUndefined();
    }
  });
});
