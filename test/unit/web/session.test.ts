import { UnsecuredJWT } from 'jose';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { RealtimeError } from '../../../web/errors.ts';
import type { HttpApi, TokenPair } from '../../../web/http.ts';
import { claimsOf, TokenSession } from '../../../web/session.ts';

beforeEach(() => vi.useFakeTimers());
afterEach(() => vi.useRealTimers());

function pair(username = 'alice', expires_in = 900): TokenPair {
  const access_token = new UnsecuredJWT({ username, roles: ['user', 7] }).encode();
  return { access_token, token_type: 'Bearer', expires_in, refresh_token: `r-${username}` };
}

function session(refresh: (token: string) => Promise<TokenPair>, settings = { autoRefresh: true }) {
  const events: string[] = [];
  const s: TokenSession = new TokenSession(
    { refresh } as unknown as HttpApi,
    { refreshMarginS: undefined, ...settings },
    {
      adopt: (p) => {
        events.push(`adopt ${p.refresh_token}`);
        s.set(p);
      },
      refreshed: async () => {
        events.push('refreshed');
      },
      refused: () => events.push('refused'),
      failed: (err) => events.push(`failed ${err.code}`),
    },
  );
  return { s, events };
}

describe('TokenSession', () => {
  it('reads the name and the string roles of its access token', () => {
    const { s } = session(async () => pair());
    s.set(pair('bob'));
    expect(s.username).toBe('bob');
    expect(s.roles).toEqual(['user']);
    expect(s.expiresAt).toBe(Date.now() + 900_000);
    s.clear();
    expect([s.username, s.roles, s.expiresAt, s.accessToken]).toEqual(['', [], 0, undefined]);
  });

  it('refreshes a fifth of the lifetime (at most 60 s) before expiry, adopting the new pair', async () => {
    const refresh = vi.fn(async () => pair('alice2'));
    const { s, events } = session(refresh);
    s.set(pair('alice', 100));
    s.scheduleRefresh();
    await vi.advanceTimersByTimeAsync(79_999);
    expect(refresh).not.toHaveBeenCalled();
    await vi.advanceTimersByTimeAsync(1);
    expect(refresh).toHaveBeenCalledWith('r-alice');
    expect(events).toEqual(['adopt r-alice2', 'refreshed']);
  });

  it('shares one refresh between concurrent calls', async () => {
    const refresh = vi.fn(async () => pair('alice2'));
    const { s } = session(refresh, { autoRefresh: false });
    s.set(pair());
    await Promise.all([s.refresh(), s.refresh()]);
    expect(refresh).toHaveBeenCalledTimes(1);
  });

  it('ends the session when the refresh token is refused', async () => {
    const { s, events } = session(async () => {
      throw new RealtimeError('invalid_token', 'spent', 401);
    });
    s.set(pair());
    await expect(s.refresh()).rejects.toMatchObject({ status: 401 });
    expect(events).toEqual(['refused']);
  });

  it('tries again on network trouble, within half the time left', async () => {
    const refresh = vi
      .fn<(t: string) => Promise<TokenPair>>()
      .mockRejectedValueOnce(new RealtimeError('network', 'offline'))
      .mockResolvedValue(pair('alice2'));
    const { s, events } = session(refresh);
    s.set(pair('alice', 40));
    await expect(s.refresh()).rejects.toMatchObject({ code: 'network' });
    await vi.advanceTimersByTimeAsync(20_000);
    expect(refresh).toHaveBeenCalledTimes(2);
    expect(events).toEqual(['adopt r-alice2', 'refreshed']);
  });

  it('says a token about to expire should be refreshed before a handshake', () => {
    const { s } = session(async () => pair());
    expect(s.nearExpiry()).toBe(false);
    s.set(pair('alice', 1));
    expect(s.nearExpiry()).toBe(true);
    s.set(pair('alice', 900));
    expect(s.nearExpiry()).toBe(false);
  });

  it.each([['not a JWT'], ['a.%%%.c'], [`a.${btoa('"x"')}.c`]])('reads no claims from %s', (token) => {
    expect(claimsOf(token)).toEqual({});
  });
});
