/**
 * docs/ is checked like code: every generated page (CLI and API references, the event
 * catalog, the relay settings table, code included from files) must equal what
 * `pnpm docs:gen` writes now, and every relative link and anchor in the docs, the README
 * and CONTRIBUTING.md must resolve.
 */

import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { describe, expect, it } from 'vitest';
import { docFiles, dumpHelp, generated, ROOT, subcommands, withIncludes } from '../docs/tools/gen.js';
import { CLI } from './harness/cli.js';

/** `hookbox <args>` as a real process, as users run it. */
function runCli(args: string[]): string {
  const r = spawnSync(process.execPath, [...CLI, ...args], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`hookbox ${args.join(' ')} exited ${r.status}: ${r.stderr}`);
  return r.stdout;
}

/** The same CLI (built, or the sources with HOOKBOX_TEST_CLI=source) read in one process. */
const helpTexts = () => dumpHelp(CLI[CLI.length - 1] as string, CLI.slice(0, -1));

/** GitHub's heading anchors: lowercase, punctuation dropped, spaces to hyphens, repeats numbered. */
function anchors(markdown: string): Set<string> {
  const seen = new Map<string, number>();
  const out = new Set<string>();
  for (const line of stripCode(markdown).split('\n')) {
    const m = /^#{1,6} (.+)$/.exec(line);
    if (!m) continue;
    const base = (m[1] as string)
      .trim()
      .toLowerCase()
      .replace(/[^\p{L}\p{N}\s_-]/gu, '')
      .replace(/\s/g, '-');
    const n = seen.get(base) ?? 0;
    seen.set(base, n + 1);
    out.add(n === 0 ? base : `${base}-${n}`);
  }
  return out;
}

/** Markdown without fenced code blocks (links and headings there are not links). */
function stripCode(markdown: string): string {
  return markdown.replace(/^```[\s\S]*?^```/gm, '');
}

function links(markdown: string): string[] {
  const text = stripCode(markdown).replace(/`[^`\n]*`/g, '');
  return [...text.matchAll(/\]\(([^)\s]+)\)/g)].map((m) => m[1] as string);
}

const pages = [...docFiles(), join(ROOT, 'README.md'), join(ROOT, 'CONTRIBUTING.md'), join(ROOT, 'ops/README.md')];

describe('docs', () => {
  it('generated pages and included code match what pnpm docs:gen writes', { timeout: 600_000 }, async () => {
    const files = await generated(helpTexts());
    expect(files.size).toBeGreaterThanOrEqual(4);
    const stale = [...files]
      .filter(([file, text]) => !existsSync(file) || readFileSync(file, 'utf8') !== text)
      .map(([file]) => relative(ROOT, file));
    expect(stale, 'out of date: run `pnpm docs:gen` and commit the result').toEqual([]);
  });

  it('the CLI reference is what `hookbox … --help` prints, for every command', { timeout: 300_000 }, () => {
    const cli = readFileSync(join(ROOT, 'docs/reference/cli.md'), 'utf8');
    for (const args of [['--help'], ['relay', '--help'], ['subscriptions', 'create', '--help']]) {
      expect(cli).toContain(`\`\`\`text\n${runCli(args).trimEnd()}\n\`\`\``);
    }
    const top = subcommands(runCli(['--help']));
    expect(top.length).toBeGreaterThan(5);
    for (const name of top) expect(cli).toContain(`## hookbox ${name}\n`);
    for (const name of subcommands(runCli(['subscriptions', '--help']))) {
      expect(cli).toContain(`### hookbox subscriptions ${name}\n`);
    }
  });

  it('every relative link and anchor resolves', () => {
    const broken: string[] = [];
    for (const page of pages) {
      const text = readFileSync(page, 'utf8');
      for (const link of links(text)) {
        if (/^[a-z]+:/i.test(link)) continue; // https:, mailto:
        const [path = '', anchor] = link.split('#');
        const target = path === '' ? page : join(dirname(page), decodeURIComponent(path));
        const where = `${relative(ROOT, page)} → ${link}`;
        if (!existsSync(target)) {
          broken.push(`${where} (no such file)`);
          continue;
        }
        if (anchor && target.endsWith('.md') && !anchors(readFileSync(target, 'utf8')).has(anchor)) {
          broken.push(`${where} (no such heading)`);
        }
        if (anchor && statSync(target).isDirectory()) broken.push(`${where} (anchor on a directory)`);
      }
    }
    expect(broken).toEqual([]);
  });

  it('an include fills the block after its marker, an empty one too, and leaves no stray fence', () => {
    const doc = join(ROOT, 'docs/receiving.md');
    const file = readFileSync(join(ROOT, 'docs/receivers/go/receiver.go'), 'utf8').trimEnd();
    const filled = `<!-- include: receivers/go/receiver.go -->\n\`\`\`go\n${file}\n\`\`\`\n`;
    expect(withIncludes('<!-- include: receivers/go/receiver.go -->\n```go\n```\n\nafter\n', doc)).toBe(
      `${filled}\nafter\n`,
    );
    expect(withIncludes('<!-- include: receivers/go/receiver.go -->\n```go\nold\n```\n', doc)).toBe(filled);
    // An empty block is only itself: the next block on the page is not taken for it.
    const next = '\n## Next\n\n```sh\nkept\n```\n';
    expect(withIncludes(`<!-- include: receivers/go/receiver.go -->\n\`\`\`go\n\`\`\`\n${next}`, doc)).toBe(
      `${filled}${next}`,
    );
    // Every included file's code appears on its page exactly once.
    for (const page of docFiles()) {
      const text = readFileSync(page, 'utf8');
      for (const m of text.matchAll(/<!-- include: (\S+) -->/g)) {
        const code = readFileSync(join(dirname(page), m[1] as string), 'utf8').trimEnd();
        expect(text.split(code).length - 1, `${relative(ROOT, page)}: ${m[1]}`).toBe(1);
      }
      expect(text, `${relative(ROOT, page)}: an empty code block`).not.toMatch(/^```[a-z]*\n```$/m);
      // An include never swallows what follows it (the text after the last include survives).
      for (const heading of ['### Python', '### PHP', '### Java'])
        if (page.endsWith('receiving.md')) expect(text).toContain(`\n${heading}\n`);
    }
  });

  it('the link checker itself finds a broken link and a missing anchor', () => {
    expect(links('see [a](nope.md) and `[b](code.md)`\n```\n[c](in-code.md)\n```')).toEqual(['nope.md']);
    expect(anchors('# Receiving webhooks\n## Idempotency: de-duplicate on `webhook-id`\n## A\n## A')).toEqual(
      new Set(['receiving-webhooks', 'idempotency-de-duplicate-on-webhook-id', 'a', 'a-1']),
    );
  });
});
