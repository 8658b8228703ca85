/**
 * `ooo-cpio [--gzip|--zstd|--none] [--level N] SRC-DIR DEST`: pack a directory as a newc
 * initramfs. Offered to element hooks on PATH during a build; mtimes come from SOURCE_DATE_EPOCH.
 */
import { writeCpio, Compression } from './cpio.js';

async function main(argv: string[]): Promise<number> {
  let compression: Compression = 'gzip';
  let level: number | undefined;
  const rest: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--gzip' || a === '--zstd' || a === '--none') compression = a.slice(2) as Compression;
    else if (a === '--level') level = Number(argv[++i]);
    else rest.push(a);
  }
  if (rest.length !== 2) {
    process.stderr.write('usage: ooo-cpio [--gzip|--zstd|--none] [--level N] SRC-DIR DEST\n');
    return 2;
  }
  const mtime = Number(process.env.SOURCE_DATE_EPOCH ?? 0);
  await writeCpio(rest[0]!, rest[1]!, { mtime, compression, level });
  return 0;
}

main(process.argv.slice(2)).then((c) => { process.exitCode = c; }, (e) => {
  process.stderr.write(`ooo-cpio: ${(e as Error).message}\n`);
  process.exitCode = 1;
});
