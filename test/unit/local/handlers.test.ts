import { describe, expect, it } from 'vitest';
import type { Deps } from '../../../lambdas/core/deps.ts';
import { FUNCTIONS } from '../../../lambdas/functions.ts';
import { httpRoutes, loadFactory, scheduledJobs, wsRoutes } from '../../../local/handlers.ts';

// Factories only capture deps; nothing here runs a handler.
const deps = { audit: () => {} } as unknown as Deps;

describe('the local routes from the manifest', () => {
  it('finds the one make…Handler of every function that serves a route or a schedule', async () => {
    const served = FUNCTIONS.filter((fn) => fn.httpRoutes?.length || fn.wsRoutes?.length || fn.schedule);
    for (const fn of served) expect(typeof (await loadFactory(fn)), fn.name).toBe('function');
  });

  it('serves every HTTP route key of the manifest, once', async () => {
    const keys = (await httpRoutes(deps)).map((r) => r.routeKey);
    const expected = FUNCTIONS.flatMap((fn) => fn.httpRoutes ?? []);
    expect(keys.sort()).toEqual([...expected].sort());
    expect(new Set(keys).size).toBe(keys.length);
  });

  it('binds the four WebSocket routes and the scheduled sweeper', async () => {
    expect(Object.keys(await wsRoutes(deps)).sort()).toEqual([
      'authorizer',
      'connect',
      'default',
      'disconnect',
    ]);
    expect(await scheduledJobs(deps)).toHaveLength(FUNCTIONS.filter((fn) => fn.schedule).length);
  });

  it('refuses a function whose entry file exports no make…Handler', async () => {
    await expect(
      loadFactory({ ...FUNCTIONS[0], name: 'functions' } as (typeof FUNCTIONS)[number]),
    ).rejects.toThrow(/exactly one make…Handler/);
  });
});
