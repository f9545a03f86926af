import { describe, expect, it } from 'vitest';
import {
  envName,
  parseSettings,
  SETTING_NAMES,
  type SettingName,
  type Settings,
  SettingsError,
  settingsFromEnv,
} from '../../../lambdas/core/settings.ts';

const AWS_REQUIRED = {
  tokenIssuer: 'urn:jwt-realtime:prod-1234',
  tokenAudience: 'urn:jwt-realtime:prod-1234:clients',
  allowedOrigins: 'https://app.example.com',
};

function from(values: Partial<Record<SettingName, unknown>>): (name: SettingName) => unknown {
  return (name) => values[name];
}

/** The problems reported for these values, or [] if they were accepted. */
function problemsOf(
  values: Partial<Record<SettingName, unknown>>,
  profile: 'local' | 'aws' = 'local',
): string[] {
  try {
    parseSettings(from(values), profile);
  } catch (err) {
    if (err instanceof SettingsError) return [...err.problems];
    throw err;
  }
  return [];
}

describe('parseSettings: defaults', () => {
  it('gives the local defaults of the spec', () => {
    const s = parseSettings(() => undefined, 'local');
    const expected: Partial<Settings> = {
      rateLimitMax: 10,
      rateLimitWindowS: 60,
      blockAfterViolations: 20,
      blockDurationS: 3600,
      maxMessageBytes: 8192,
      sweepIntervalS: 60,
      loginMaxFailures: 5,
      loginMaxFailuresPerIp: 50,
      loginFailureWindowS: 900,
      registerMaxPerIp: 20,
      ipBlockAfterFailures: 0,
      clockSkewS: 30,
      accessTokenTtlS: 15 * 60,
      refreshTokenTtlS: 7 * 24 * 3600,
      maxConnectionsPerUser: 10,
      historyTtlS: 24 * 3600,
      maxRecoveryMessages: 200,
      allowMissingOrigin: false,
      messageEncryption: false,
      oidcIssuer: undefined,
    };
    expect(s).toMatchObject(expected);
    expect([...s.allowedOrigins].sort()).toEqual(['http://127.0.0.1:3000', 'http://localhost:3000']);
    expect(s.tokenIssuer.length).toBeGreaterThan(0);
    expect(s.tokenAudience.length).toBeGreaterThan(0);
  });

  it('sweeps every 5 minutes on AWS', () => {
    expect(parseSettings(from(AWS_REQUIRED), 'aws').sweepIntervalS).toBe(300);
  });

  it('has no localhost origin in the AWS defaults', () => {
    const s = parseSettings(
      from({ ...AWS_REQUIRED, allowedOrigins: undefined, allowMissingOrigin: 'true' }),
      'aws',
    );
    expect(s.allowedOrigins.filter((o) => /localhost|127\.0\.0\.1/.test(o))).toEqual([]);
  });

  it('knows every setting named in the spec', () => {
    const spec = [
      'allowedOrigins',
      'allowMissingOrigin',
      'accessTokenTtlS',
      'refreshTokenTtlS',
      'rateLimitMax',
      'rateLimitWindowS',
      'blockAfterViolations',
      'blockDurationS',
      'maxMessageBytes',
      'sweepIntervalS',
      'loginMaxFailures',
      'loginMaxFailuresPerIp',
      'loginFailureWindowS',
      'registerMaxPerIp',
      'ipBlockAfterFailures',
      'clockSkewS',
      'messageEncryption',
      'oidcIssuer',
      'oidcAudience',
      'maxConnectionsPerUser',
      'historyTtlS',
      'maxRecoveryMessages',
    ];
    expect(SETTING_NAMES).toEqual(expect.arrayContaining(spec));
  });
});

describe('envName', () => {
  for (const [name, env] of [
    ['rateLimitMax', 'RATE_LIMIT_MAX'],
    ['allowedOrigins', 'ALLOWED_ORIGINS'],
    ['accessTokenTtlS', 'ACCESS_TOKEN_TTL_S'],
    ['loginMaxFailuresPerIp', 'LOGIN_MAX_FAILURES_PER_IP'],
    ['oidcIssuer', 'OIDC_ISSUER'],
    ['clockSkewS', 'CLOCK_SKEW_S'],
    ['maxConnectionsPerUser', 'MAX_CONNECTIONS_PER_USER'],
  ] as const) {
    it(`spells ${name} as ${env}`, () => {
      expect(envName(name)).toBe(env);
    });
  }

  it('reads each setting from its SCREAMING_SNAKE_CASE variable', () => {
    const s = settingsFromEnv(
      {
        RATE_LIMIT_MAX: '3',
        CLOCK_SKEW_S: '5',
        MAX_CONNECTIONS_PER_USER: '2',
        LOGIN_MAX_FAILURES_PER_IP: '7',
        ALLOWED_ORIGINS: 'https://app.example.com',
        ALLOW_MISSING_ORIGIN: 'true',
        rateLimitMax: '99',
      },
      'local',
    );
    expect(s).toMatchObject({
      rateLimitMax: 3,
      clockSkewS: 5,
      maxConnectionsPerUser: 2,
      loginMaxFailuresPerIp: 7,
      allowMissingOrigin: true,
    });
    expect(s.allowedOrigins).toEqual(['https://app.example.com']);
  });

  it('gives every setting a distinct variable', () => {
    const names = SETTING_NAMES.map(envName);
    expect(new Set(names).size).toBe(names.length);
    for (const n of names) expect(n).toMatch(/^[A-Z][A-Z0-9_]*$/);
  });
});

describe('parseSettings: bad values', () => {
  const badValues: [SettingName, string][] = [
    ['rateLimitMax', 'ten'],
    ['rateLimitMax', '0'],
    ['rateLimitMax', '-1'],
    ['rateLimitMax', '1.5'],
    ['rateLimitMax', '1e3'],
    ['rateLimitMax', '0x10'],
    ['rateLimitMax', '10 frames'],
    ['rateLimitMax', 'NaN'],
    ['rateLimitMax', 'Infinity'],
    ['accessTokenTtlS', '0'],
    ['accessTokenTtlS', '-900'],
    ['clockSkewS', '-5'],
    ['clockSkewS', String(24 * 3600)],
    ['maxMessageBytes', '0'],
    ['maxConnectionsPerUser', '0'],
    ['maxRecoveryMessages', '0'],
    ['maxRecoveryMessages', '1001'],
    ['allowMissingOrigin', 'maybe'],
    ['messageEncryption', 'enabled?'],
    ['allowedOrigins', 'https://app.example.com/path'],
    ['allowedOrigins', 'https://*.example.com'],
    ['allowedOrigins', '*'],
    ['allowedOrigins', 'app.example.com'],
    ['allowedOrigins', 'https://app.example.com,https://evil.example.com/x'],
    ['oidcIssuer', 'not a url'],
  ];
  for (const [name, raw] of badValues) {
    it(`refuses ${name}=${JSON.stringify(raw)}, naming ${name} and ${envName(name)}`, () => {
      const problems = problemsOf({ [name]: raw, oidcAudience: 'client-id' });
      expect(problems).toHaveLength(1);
      expect(problems[0]).toContain(name);
      expect(problems[0]).toContain(envName(name));
    });
  }

  it('puts the setting name in the error message, so start-up says what to fix', () => {
    expect(() => parseSettings(from({ rateLimitMax: 'ten' }), 'local')).toThrow(
      /rateLimitMax.*RATE_LIMIT_MAX/,
    );
  });

  it('reports several bad values together', () => {
    const problems = problemsOf({
      rateLimitMax: 'x',
      clockSkewS: '-5',
      allowedOrigins: 'https://a.example/p',
    });
    expect(problems).toHaveLength(3);
    for (const name of ['rateLimitMax', 'clockSkewS', 'allowedOrigins']) {
      expect(problems.filter((p) => p.includes(name) && p.includes(envName(name)))).toHaveLength(1);
    }
  });

  it('requires tokenIssuer and tokenAudience on AWS, naming both', () => {
    const problems = problemsOf({ allowedOrigins: 'https://app.example.com' }, 'aws');
    expect(problems.some((p) => p.includes('tokenIssuer') && p.includes('TOKEN_ISSUER'))).toBe(true);
    expect(problems.some((p) => p.includes('tokenAudience') && p.includes('TOKEN_AUDIENCE'))).toBe(true);
  });

  it('refuses an empty tokenIssuer on AWS', () => {
    const problems = problemsOf({ ...AWS_REQUIRED, tokenIssuer: '  ' }, 'aws');
    expect(problems.some((p) => p.includes('tokenIssuer'))).toBe(true);
  });

  it('refuses an oidcIssuer without an oidcAudience', () => {
    const problems = problemsOf({ oidcIssuer: 'https://idp.example.com' });
    expect(problems.some((p) => p.includes('oidcAudience'))).toBe(true);
  });

  it('refuses an empty origin allowlist unless missing origins are allowed', () => {
    expect(problemsOf({ allowedOrigins: '' }).some((p) => p.includes('allowedOrigins'))).toBe(true);
    expect(problemsOf({ allowedOrigins: '', allowMissingOrigin: 'true' })).toEqual([]);
  });
});

describe('parseSettings: result', () => {
  it('is frozen, its origin list included', () => {
    const s = parseSettings(() => undefined, 'local');
    expect(Object.isFrozen(s)).toBe(true);
    expect(Reflect.set(s, 'rateLimitMax', 1_000_000)).toBe(false);
    expect(s.rateLimitMax).toBe(10);
    expect(Object.isFrozen(s.allowedOrigins)).toBe(true);
    expect(() => (s.allowedOrigins as string[]).push('https://evil.example.com')).toThrow(TypeError);
  });

  it('normalizes origins: lower-case scheme and host, default port dropped, blanks and duplicates removed', () => {
    const s = parseSettings(
      from({
        allowedOrigins:
          ' HTTPS://App.Example.COM:443 , https://app.example.com,, http://LOCALHOST:3000,http://x.test:80',
      }),
      'local',
    );
    expect([...s.allowedOrigins].sort()).toEqual([
      'http://localhost:3000',
      'http://x.test',
      'https://app.example.com',
    ]);
  });

  it('parses numbers given as numbers (CDK context) as well as strings', () => {
    expect(parseSettings(from({ rateLimitMax: 25, allowMissingOrigin: true }), 'local')).toMatchObject({
      rateLimitMax: 25,
      allowMissingOrigin: true,
    });
  });
});

describe('parseSettings: oidcIssuer', () => {
  for (const issuer of [
    'https://idp.example.com',
    'https://idp.example.com/realms/main',
    'http://localhost:8080',
    'http://127.0.0.1:9000/realms/dev',
    'http://[::1]:9000',
  ]) {
    it(`accepts ${issuer}`, () => {
      expect(problemsOf({ oidcIssuer: issuer, oidcAudience: 'client-id' })).toEqual([]);
    });
  }

  for (const issuer of [
    'http://idp.example.com',
    'http://localhost.evil.example',
    'http://127.0.0.1.nip.io',
    'http://localhost@evil.example',
    'ftp://idp.example.com',
    'javascript:alert(1)',
  ]) {
    it(`refuses ${issuer} (http only on loopback)`, () => {
      const problems = problemsOf({ oidcIssuer: issuer, oidcAudience: 'client-id' });
      expect(problems).toHaveLength(1);
      expect(problems[0]).toContain('oidcIssuer');
    });
  }
});
