import { describe, expect, it } from 'vitest';
import type { AccessState } from '../../../lambdas/core/access.ts';
import { closeReason } from '../../../lambdas/core/socket-access.ts';

const open: AccessState = { revoked: undefined, userBlock: undefined, ipBlock: undefined };
const block = { reason: 'abuse', expiresAt: 2_000 };
const NOW = 1_000;
const SKEW = 30;

describe('closeReason', () => {
  const cases: [
    what: string,
    live: { exp: number } | undefined,
    state: AccessState,
    reason: string | undefined,
  ][] = [
    ['a live token of an unblocked user', { exp: NOW + 60 }, open, undefined],
    ['a token within the clock skew of its expiry', { exp: NOW - SKEW + 1 }, open, undefined],
    ['a token expired by the clock skew', { exp: NOW - SKEW }, open, 'token_expired'],
    ['a socket whose row is gone', undefined, open, 'token_revoked'],
    ['a revoked jti', { exp: NOW + 60 }, { ...open, revoked: 'jti' }, 'token_revoked'],
    ['a revoked session', { exp: NOW + 60 }, { ...open, revoked: 'sid' }, 'token_revoked'],
    ['a user revoked before the token', { exp: NOW + 60 }, { ...open, revoked: 'user' }, 'token_revoked'],
    ['a blocked user', { exp: NOW + 60 }, { ...open, userBlock: block }, 'blocked'],
    [
      'a revoked token of a blocked user',
      { exp: NOW + 60 },
      { ...open, revoked: 'jti', userBlock: block },
      'token_revoked',
    ],
    ['an expired token of a blocked user', { exp: NOW - 3_600 }, { ...open, userBlock: block }, 'blocked'],
    // An IP block refuses requests and handshakes; an open socket is not closed for it.
    ['a blocked address', { exp: NOW + 60 }, { ...open, ipBlock: block }, undefined],
  ];
  for (const [what, live, state, reason] of cases) {
    it(`${reason === undefined ? 'keeps' : `closes (${reason})`} ${what}`, () => {
      expect(closeReason(live, state, NOW, SKEW)).toBe(reason);
    });
  }
});
