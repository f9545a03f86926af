import { SettingsError } from '../lambdas/core/settings.ts';
import { localConfig, misspeltVariables, StartupError } from './config.ts';
import { prettyAuditLine } from './log-format.ts';
import { startLocal } from './system.ts';

/** `npm start`: the whole system on this machine, until SIGINT or SIGTERM. */
async function main(): Promise<void> {
  // Node 20 is supported here; the SDK's notice about its future Node floor is noise on every start.
  process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';
  for (const { name, meant } of misspeltVariables(process.env))
    process.stderr.write(`warning: ${name} is not a setting; did you mean ${meant}?\n`);
  let config: ReturnType<typeof localConfig>;
  try {
    config = localConfig(process.env);
  } catch (err) {
    if (err instanceof SettingsError) {
      process.stderr.write(`${err.message}\n`);
      process.exit(2);
    }
    throw err;
  }
  // A person at a terminal reads one line per event; a pipe (a file, a log shipper) gets JSON.
  const pretty = (config.logFormat ?? (process.stdout.isTTY ? 'pretty' : 'json')) === 'pretty';
  const write = (line: string) => process.stdout.write(`${pretty ? prettyAuditLine(line) : line}\n`);
  const system = await startLocal(config, { write });
  process.stderr.write(
    [
      'Local system ready',
      `  Demo page:     ${system.httpUrl}/`,
      `  HTTP API:      ${system.httpUrl}`,
      `  WebSocket API: ${system.wsUrl}`,
      `  Data:          ${config.dataDir ?? 'in memory (DATA_DIR=:memory:)'}`,
      '',
    ].join('\n'),
  );
  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) return;
    stopping = true;
    process.stderr.write(`${signal}: stopping...\n`);
    system.close().then(
      () => process.exit(0),
      (err: unknown) => {
        process.stderr.write(`error while stopping: ${(err as Error).message}\n`);
        process.exit(1);
      },
    );
  };
  process.on('SIGINT', () => stop('SIGINT'));
  process.on('SIGTERM', () => stop('SIGTERM'));
}

main().catch((err: unknown) => {
  // One line, never a stack: a start-up problem is the user's to fix, and says which setting.
  const message = err instanceof Error ? err.message : String(err);
  process.stderr.write(
    `could not start: ${err instanceof StartupError ? message : message.split('\n')[0]}\n`,
  );
  process.exit(err instanceof StartupError ? 2 : 1);
});
