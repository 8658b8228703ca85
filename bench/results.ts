/** Recording a benchmark run in bench/RESULTS.md: the entry goes at the end of its own section. */
import { appendFileSync, existsSync, readFileSync, writeFileSync } from 'node:fs';

export function recordResult(file: string | URL, section: string, entry: string): void {
  const existing = existsSync(file) ? readFileSync(file, 'utf8') : '# Benchmark results\n';
  const at = existing.indexOf(`\n## ${section}\n`);
  if (at < 0) {
    appendFileSync(file, `${existing.endsWith('\n') ? '' : '\n'}\n## ${section}\n\n${entry}`);
    return;
  }
  // Add the entry at the end of the section, leaving the other sections as they are.
  const next = existing.indexOf('\n## ', at + 1);
  const end = next < 0 ? existing.length : next + 1;
  const before = existing.slice(0, end);
  writeFileSync(file, `${before}${before.endsWith('\n\n') ? '' : before.endsWith('\n') ? '\n' : '\n\n'}${entry}${next < 0 ? '' : '\n'}${existing.slice(end)}`);
}
