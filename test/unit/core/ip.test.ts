import { describe, expect, it } from 'vitest';
import { normalizeIp } from '../../../lambdas/core/ip.ts';

describe('normalizeIp', () => {
  for (const [raw, canonical] of [
    ['10.0.0.1', '10.0.0.1'],
    ['255.255.255.255', '255.255.255.255'],
    ['0.0.0.0', '0.0.0.0'],
    ['::1', '::1'],
    ['::', '::'],
    ['2001:DB8::1', '2001:db8::1'],
    ['2001:db8:0:0:0:0:0:1', '2001:db8::1'],
    ['2001:0db8:0000:0000:0000:0000:0000:0001', '2001:db8::1'],
    ['2001:db8::0:1', '2001:db8::1'],
    ['2001:db8:0:0:1:0:0:1', '2001:db8::1:0:0:1'],
    ['FE80::ABCD', 'fe80::abcd'],
    ['::ffff:10.0.0.1', '10.0.0.1'],
    ['::FFFF:10.0.0.1', '10.0.0.1'],
    ['::ffff:a00:1', '10.0.0.1'],
    ['0:0:0:0:0:ffff:0a00:0001', '10.0.0.1'],
    ['::ffff:192.168.255.254', '192.168.255.254'],
  ] as const) {
    it(`writes ${raw} as ${canonical}`, () => {
      expect(normalizeIp(raw)).toBe(canonical);
    });
  }

  it('gives every spelling of one address the same blocklist key', () => {
    const v6 = ['2001:db8::1', '2001:DB8::1', '2001:0db8::0001', '2001:db8:0:0:0:0:0:1', '2001:db8::0:0:1'];
    expect(new Set(v6.map(normalizeIp))).toEqual(new Set(['2001:db8::1']));
    const v4 = ['192.0.2.7', '::ffff:192.0.2.7', '::FFFF:c000:207', '0:0:0:0:0:ffff:c000:0207'];
    expect(new Set(v4.map(normalizeIp))).toEqual(new Set(['192.0.2.7']));
  });

  it('keeps addresses that differ apart', () => {
    expect(normalizeIp('2001:db8::1')).not.toBe(normalizeIp('2001:db8::10'));
    expect(normalizeIp('::ffff:10.0.0.1')).not.toBe(normalizeIp('::10.0.0.1'));
  });

  for (const [label, raw] of [
    ['a zone id', 'fe80::1%eth0'],
    ['a numeric zone id', 'fe80::1%1'],
    ['a URL-encoded zone id', 'fe80::1%25eth0'],
    ['a mapped address with a zone id', '::ffff:10.0.0.1%eth0'],
  ] as const) {
    it(`refuses ${label}: ${raw}`, () => {
      expect(normalizeIp(raw)).toBeUndefined();
    });
  }

  for (const [label, raw] of [
    ['a leading-zero octet (octal to some parsers)', '010.0.0.1'],
    ['a leading-zero inner octet', '10.00.0.1'],
    ['a zero-padded address', '010.000.000.001'],
    ['a hex octet', '0x7f.0.0.1'],
    ['a decimal integer', '2130706433'],
    ['an octal integer', '017700000001'],
    ['a short form', '127.1'],
  ] as const) {
    it(`refuses ${label}: ${raw}`, () => {
      expect(normalizeIp(raw)).toBeUndefined();
    });
  }

  for (const [label, raw] of [
    ['an empty string', ''],
    ['a host name', 'localhost'],
    ['three octets', '1.2.3'],
    ['five octets', '1.2.3.4.5'],
    ['an octet over 255', '256.1.1.1'],
    ['a negative octet', '1.2.3.-4'],
    ['a leading space', ' 1.2.3.4'],
    ['a trailing space', '1.2.3.4 '],
    ['a trailing newline', '1.2.3.4\n'],
    ['a CIDR block', '1.2.3.4/24'],
    ['a v6 CIDR block', '2001:db8::/32'],
    ['a port', '1.2.3.4:80'],
    ['a bracketed v6 address', '[::1]'],
    ['a bracketed v6 address with a port', '[::1]:443'],
    ['a URL', 'http://1.2.3.4/'],
    ['a bad hex group', '2001:db8::g'],
    ['two double colons', '2001::db8::1'],
    ['nine groups', '1:2:3:4:5:6:7:8:9'],
    ['a comma-joined pair', '1.2.3.4,5.6.7.8'],
    ['an overlong string', `${'0:'.repeat(40)}1`],
    ['a path traversal', '../../etc/passwd'],
  ] as const) {
    it(`refuses ${label}: ${JSON.stringify(raw)}`, () => {
      expect(normalizeIp(raw)).toBeUndefined();
    });
  }

  for (const [label, raw] of [
    ['undefined', undefined],
    ['null', null],
    ['a number', 167772161],
    ['an object', { ip: '10.0.0.1' }],
    ['an array', ['10.0.0.1']],
  ] as const) {
    it(`refuses ${label}`, () => {
      expect(normalizeIp(raw)).toBeUndefined();
    });
  }
});
