import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { StartupError } from './config.ts';
import type { SigningCredentials } from './sigv4.ts';

/** What a running `npm start` tells other local commands (the users CLI) about itself. */
export interface RunningSystem {
  readonly pid: number;
  readonly dynamoEndpoint: string;
  /** What requests to the store must be signed with (the file is mode 0600). */
  readonly dynamoCredentials?: SigningCredentials | undefined;
  readonly httpUrl: string;
  readonly wsUrl: string;
  /** The `@connections` endpoint, so the users CLI can close the sockets of a user it blocks. */
  readonly managementEndpoint?: string;
  /** What `@connections` calls must be signed with (the gateway's secret of this run). */
  readonly managementCredentials?: SigningCredentials | undefined;
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

const WHY: Record<string, string> = {
  EACCES: 'permission denied',
  EPERM: 'permission denied',
  EROFS: 'the file system is read-only',
  ENOTDIR: 'a file is in the way (it, or a folder above it, is a file)',
  EEXIST: 'a file is in the way (it, or a folder above it, is a file)',
  ENOSPC: 'the disk is full',
  EDQUOT: 'the disk quota is used up',
};

/**
 * Makes sure the data folder exists and takes a file, before the store opens it: a folder
 * that cannot be written gets one line naming `DATA_DIR` instead of a store error.
 */
export async function checkDataDir(dataDir: string): Promise<void> {
  try {
    await mkdir(dataDir, { recursive: true });
    const probe = join(dataDir, `.write-check-${process.pid}`);
    await writeFile(probe, '');
    await rm(probe, { force: true });
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? '';
    throw new StartupError(
      `DATA_DIR ${dataDir} is not a usable folder: ${WHY[code] ?? (err as Error).message}${code ? ` (${code})` : ''}. ` +
        'Set DATA_DIR to a folder this user can write, or DATA_DIR=:memory: to keep nothing.',
    );
  }
}
