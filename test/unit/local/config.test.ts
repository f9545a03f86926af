import { describe, expect, it } from 'vitest';
import { SettingsError } from '../../../lambdas/core/settings.ts';
import { localConfig, misspeltVariables } from '../../../local/config.ts';

describe('localConfig: allowed origins', () => {
  it('allows the demo page on the default port 3000', () => {
    expect(localConfig({}).settings.allowedOrigins).toEqual([
      'http://localhost:3000',
      'http://127.0.0.1:3000',
    ]);
  });

  it('follows PORT when ALLOWED_ORIGINS is unset', () => {
    const config = localConfig({ PORT: '3100', WS_PORT: '3101' });
    expect(config.port).toBe(3100);
    expect(config.settings.allowedOrigins).toEqual(['http://localhost:3100', 'http://127.0.0.1:3100']);
  });

  it('keeps ALLOWED_ORIGINS as given, whatever PORT is', () => {
    const config = localConfig({ PORT: '3100', ALLOWED_ORIGINS: 'http://localhost:5173' });
    expect(config.settings.allowedOrigins).toEqual(['http://localhost:5173']);
  });

  it('keeps the :3000 pair with PORT=0, whose port is unknown until it listens', () => {
    expect(localConfig({ PORT: '0' }).settings.allowedOrigins).toContain('http://localhost:3000');
  });

  it('reports a bad PORT once, beside the other bad settings', () => {
    try {
      localConfig({ PORT: 'http', RATE_LIMIT_MAX: 'ten' });
      expect.unreachable();
    } catch (err) {
      expect(err).toBeInstanceOf(SettingsError);
      const problems = (err as SettingsError).problems;
      expect(problems.filter((p) => p.startsWith('PORT'))).toHaveLength(1);
      expect(problems.some((p) => p.startsWith('rateLimitMax'))).toBe(true);
    }
  });
});

describe('misspeltVariables', () => {
  it.each([
    ['RATE_LIMT_MAX', 'RATE_LIMIT_MAX'],
    ['RATE_LIMIT_MAXX', 'RATE_LIMIT_MAX'],
    ['ALOWED_ORIGINS', 'ALLOWED_ORIGINS'],
    ['ALLOWED_ORIGIN', 'ALLOWED_ORIGINS'],
    ['WSPORT', 'WS_PORT'],
    ['DATADIR', 'DATA_DIR'],
    ['ACCESS_TOKEN_TLL_S', 'ACCESS_TOKEN_TTL_S'],
  ])('suggests the setting for %s', (name, meant) => {
    expect(misspeltVariables({ [name]: '1' })).toEqual([{ name, meant }]);
  });

  it('is quiet about settings spelt right and about the usual variables of a shell', () => {
    const env = Object.fromEntries(
      [
        'RATE_LIMIT_MAX',
        'PORT',
        'HOST',
        'HOME',
        'PATH',
        'TERM',
        'USER',
        'SHELL',
        'HOSTNAME',
        'PWD',
        'OLDPWD',
        'LANG',
        'NODE_ENV',
        'NODE_OPTIONS',
        'CI',
        'DEBUG',
        'TMPDIR',
        'EDITOR',
        'DISPLAY',
        'LOGNAME',
        'COLORTERM',
        'SHLVL',
        'MAIL',
        'TZ',
        'PAGER',
        'VISUAL',
        'CHROMIUM_PATH',
        'USER_PASSWORD',
        'USERS_TABLE',
        'AWS_REGION',
        'AWS_PROFILE',
      ].map((k) => [k, 'x']),
    );
    expect(misspeltVariables(env)).toEqual([]);
  });
});
