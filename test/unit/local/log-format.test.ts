import { describe, expect, it } from 'vitest';
import { prettyAuditLine } from '../../../local/log-format.ts';

describe('prettyAuditLine', () => {
  it('puts time, level, event, user and reason first, then the other fields', () => {
    const json = JSON.stringify({
      level: 'warn',
      event: 'ws.denied',
      time: '2026-01-01T12:00:01.000Z',
      username: 'bob',
      reason: 'origin',
      ip: '127.0.0.1',
    });
    const line = prettyAuditLine(json);
    expect(line).toMatch(/^\d\d:\d\d:\d\d +WARN +ws\.denied +bob {2}origin {2}ip=127\.0\.0\.1$/);
    expect(line).not.toContain('{');
  });

  it('marks a line without a user with a dash and leaves info unmarked', () => {
    const line = prettyAuditLine(JSON.stringify({ level: 'info', event: 'sweep.run', time: 'x', count: 3 }));
    expect(line).toMatch(/^--:--:-- +sweep\.run +- {2}count=3$/);
  });

  it('passes a line that is not JSON through unchanged', () => {
    expect(prettyAuditLine('plain text')).toBe('plain text');
  });
});
