import { chmod, mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import {
  generateStoredKey,
  type KeySource,
  keySetSource,
  parseStoredKeySet,
  type StoredKeySet,
} from '../lambdas/core/keys.ts';

/**
 * Local keys: a key set kept in a file (mode 0600) in the data folder, generated on
 * first start so that tokens stay valid across restarts. With `path` undefined
 * (`DATA_DIR=:memory:`), a fresh key set lives in memory only.
 */
export function fileKeySource(path: string | undefined, now: () => Date = () => new Date()): KeySource {
  return keySetSource(async () => {
    if (path === undefined) return { keys: [await generateStoredKey(now())] };
    try {
      return parseStoredKeySet(await readFile(path, 'utf8'));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
    const set: StoredKeySet = { keys: [await generateStoredKey(now())] };
    await writeKeySetFile(path, set);
    return set;
  });
}

/** Writes a local key set file whole (mode 0600, renamed into place, so no reader sees half a file). */
export async function writeKeySetFile(path: string, set: StoredKeySet): Promise<void> {
  await mkdir(dirname(path), { recursive: true });
  const tmp = `${path}.${process.pid}.tmp`;
  await writeFile(tmp, JSON.stringify(set), { mode: 0o600 });
  await chmod(tmp, 0o600);
  await rename(tmp, path);
}
