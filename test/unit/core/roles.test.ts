import { describe, expect, it } from 'vitest';
import { DEFAULT_ROLE, rolesOrDefault } from '../../../lambdas/core/roles.ts';

describe('rolesOrDefault', () => {
  it('keeps the roles given', () => {
    expect(rolesOrDefault(['admin', 'user'])).toEqual(['admin', 'user']);
  });

  it('stands the default role in for none (a string set cannot be empty)', () => {
    expect(rolesOrDefault([])).toEqual([DEFAULT_ROLE]);
  });
});
