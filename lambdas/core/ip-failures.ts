import { blockId, putBlock } from './access.ts';
import { nowS } from './clock.ts';
import { incrementCounter, windowAt } from './counters.ts';
import type { Deps } from './deps.ts';

/** Failed logins and refused handshakes from one IP, for `ipBlockAfterFailures`. */
export const ipFailureScope = (ip: string) => `fail#ip#${ip}`;

/**
 * Counts a failure against an IP (failed login, refused handshake) and blocks the IP
 * for `blockDurationS` once `ipBlockAfterFailures` is reached. Off when that is 0.
 */
export async function recordIpFailure(deps: Deps, ip: string, reason: string): Promise<void> {
  const { ipBlockAfterFailures, loginFailureWindowS, blockDurationS } = deps.settings;
  if (ipBlockAfterFailures === 0) return;
  const failures = await incrementCounter(
    deps,
    ipFailureScope(ip),
    windowAt(nowS(deps.clock), loginFailureWindowS),
  );
  if (failures === ipBlockAfterFailures) {
    await putBlock(deps, blockId.ip(ip), blockDurationS, reason, 'system');
    deps.audit('warn', 'ip.blocked', {
      ip,
      reason,
      count: failures,
      durationS: blockDurationS,
      by: 'system',
    });
  }
}
