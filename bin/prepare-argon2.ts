import { ensureArgon2Arm64 } from '../lib/argon2.ts';

/**
 * Fetches `@node-rs/argon2` for linux-arm64-gnu into `.build/` once, so that later
 * `cdk synth` runs need no network. Synth does the same on first use; this lets a deployer
 * (or an install hook) do it ahead of time: `npx tsx bin/prepare-argon2.ts`.
 */
try {
  console.log(`argon2 for Lambda (linux-arm64-gnu) is ready in ${ensureArgon2Arm64()}`);
} catch (err) {
  console.error((err as Error).message);
  process.exitCode = 1;
}
