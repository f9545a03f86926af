/**
 * One readable line for a JSON audit line, for `npm start` on a terminal, as serverless-offline
 * prints: time, level (when not info), event, user, reason, then the other fields as `key=value`.
 * The fields are the audit's closed set, so nothing secret can appear here either.
 *
 * @example prettyAuditLine('{"level":"warn","event":"auth.login_failed","time":"…","username":"bob","reason":"bad_password"}')
 * // '12:00:01  WARN  auth.login_failed     bob  bad_password'
 */
export function prettyAuditLine(json: string): string {
  let line: Record<string, unknown>;
  try {
    line = JSON.parse(json) as Record<string, unknown>;
  } catch {
    return json;
  }
  const { time, level, event, username, reason, ...rest } = line;
  const date = typeof time === 'string' ? new Date(time) : undefined;
  const clock = date && !Number.isNaN(date.getTime()) ? date.toTimeString().slice(0, 8) : '--:--:--';
  const mark = level === 'warn' ? ' WARN ' : level === 'error' ? 'ERROR ' : '      ';
  const extra = Object.entries(rest)
    .filter(([, v]) => v !== undefined && v !== null)
    .map(([k, v]) => `${k}=${typeof v === 'string' ? v : JSON.stringify(v)}`);
  const parts = [String(event ?? '?').padEnd(20), typeof username === 'string' ? username : '-'];
  if (typeof reason === 'string' && reason !== '') parts.push(reason);
  return `${clock} ${mark} ${[...parts, ...extra].join('  ')}`.trimEnd();
}
