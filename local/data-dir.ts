import { readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { SigningCredentials } from './sigv4.ts';

/** What a running `npm start` tells other local commands (the users CLI) about itself. */
export interface RunningSystem {
  readonly pid: number;
  readonly dynamoEndpoint: string;
  /** What requests to the store must be signed with (the file is mode 0600). */
  readonly dynamoCredentials?: SigningCredentials | undefined;
  readonly httpUrl: string;
  readonly wsUrl: string;
}

export const paths = (dataDir: string) => ({
  dynamo: join(dataDir, 'dynamo'),
  keys: join(dataDir, 'keys.json'),
  running: join(dataDir, 'running.json'),
});

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** The system running on this data folder, if one is (a stale file from a crash is ignored). */
export async function findRunning(dataDir: string): Promise<RunningSystem | undefined> {
  try {
    const info = JSON.parse(await readFile(paths(dataDir).running, 'utf8')) as RunningSystem;
    return alive(info.pid) ? info : undefined;
  } catch {
    return undefined;
  }
}

export async function writeRunning(dataDir: string, info: RunningSystem): Promise<void> {
  await writeFile(paths(dataDir).running, JSON.stringify(info), { mode: 0o600 });
}

export async function removeRunning(dataDir: string): Promise<void> {
  await rm(paths(dataDir).running, { force: true });
}
