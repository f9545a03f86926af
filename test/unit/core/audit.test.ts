import { describe, expect, it } from 'vitest';
import { createAudit } from '../../../lambdas/core/audit.ts';

const at = Date.parse('2025-03-01T12:00:00.123Z');
const clock = { now: () => at };

function lines() {
  const out: Record<string, unknown>[] = [];
  const audit = createAudit((line) => out.push(JSON.parse(line) as Record<string, unknown>), clock);
  return { out, audit };
}

describe('audit lines', () => {
  it('carry level, event and time, as the spec lists them', () => {
    const { out, audit } = lines();
    audit('warn', 'auth.login_failed', { username: 'alice', reason: 'bad_password' });
    expect(out[0]).toMatchObject({
      level: 'warn',
      event: 'auth.login_failed',
      time: '2025-03-01T12:00:00.123Z',
      username: 'alice',
    });
  });

  it('carry an RFC 3339 timestamp, the field Lambda reads for log-level filtering', () => {
    // Without a valid `timestamp`, Lambda files a JSON line as INFO whatever its `level`: a
    // function whose application log level is raised to WARN would drop every audit warning.
    const { out, audit } = lines();
    audit('error', 'ws.denied', { reason: 'store_unavailable' });
    expect(out[0]?.timestamp).toBe('2025-03-01T12:00:00.123Z');
    expect(out[0]?.level).toBe('error');
  });

  it('cannot be given another timestamp or level through the fields', () => {
    const { out, audit } = lines();
    audit('info', 'ws.connect', { timestamp: 'forged', level: 'error' } as never);
    expect(out[0]).toMatchObject({ level: 'info', timestamp: '2025-03-01T12:00:00.123Z' });
  });
});
