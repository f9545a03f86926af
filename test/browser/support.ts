import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type Browser, chromium, type Locator, type Page } from 'playwright-core';
import { freePort, startTestSystem, type TestSystem } from '../kit/system.ts';
import { untilRead } from '../kit/wait.ts';

export const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';

/** Flags for Debian's Chromium in a container on a closed network (no sandbox, no background calls home). */
const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

/** Launches Chromium; Playwright gives each launch a fresh temporary profile. */
export async function launchChromium(): Promise<Browser> {
  return chromium.launch({ executablePath: CHROMIUM, headless: true, args: CHROMIUM_ARGS });
}

/**
 * The local system with the page's own origin allowed. The origin must be known before
 * start-up (settings are parsed once), so a free port is picked first; a lost race for
 * it is retried.
 */
export async function startPageSystem(env: Record<string, string> = {}): Promise<TestSystem> {
  for (let attempt = 1; ; attempt++) {
    const port = await freePort();
    try {
      return await startTestSystem(
        { PORT: String(port), ALLOWED_ORIGINS: `http://127.0.0.1:${port}`, ...env },
        undefined,
        { sweeperTimer: false },
      );
    } catch (err) {
      if (attempt >= 5 || (err as NodeJS.ErrnoException).code !== 'EADDRINUSE') throw err;
    }
  }
}

/** Problems the page reported: uncaught exceptions and Content-Security-Policy refusals. */
export function watchProblems(page: Page): string[] {
  const problems: string[] = [];
  page.on('pageerror', (err) => problems.push(`pageerror: ${err.message}`));
  page.on('console', (msg) => {
    if (msg.type() === 'error' && /Content Security Policy|Uncaught/i.test(msg.text()))
      problems.push(msg.text());
  });
  return problems;
}

export async function tempProfile(): Promise<{ path: string; remove(): Promise<void> }> {
  const path = await mkdtemp(join(tmpdir(), 'jr-chromium-'));
  return { path, remove: () => rm(path, { recursive: true, force: true }) };
}

const matches = (text: string, expected: string | RegExp) =>
  typeof expected === 'string' ? text === expected : expected.test(text);

/** Waits for the element's text to be `expected` (a string exactly, or a pattern). */
export function hasText(locator: Locator, expected: string | RegExp): Promise<void> {
  return untilRead(
    `text of ${locator}`,
    async () => ((await locator.textContent()) ?? '').trim(),
    (t) => matches(t, expected),
  );
}

/** Waits for the element's text to contain `expected`. */
export function containsText(locator: Locator, expected: string | RegExp): Promise<void> {
  return untilRead(
    `text of ${locator}`,
    async () => (await locator.textContent()) ?? '',
    (t) => (typeof expected === 'string' ? t.includes(expected) : expected.test(t)),
  );
}

export function isVisible(locator: Locator): Promise<void> {
  return locator.first().waitFor({ state: 'visible', timeout: 10_000 });
}

export function hasCount(locator: Locator, n: number): Promise<void> {
  return untilRead(
    `count of ${locator}`,
    () => locator.count(),
    (c) => c === n,
  );
}
