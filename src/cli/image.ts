/**
 * `ooo image build`: build disk images and ramdisks from elements (see docs/elements.md).
 */
import { CommandSpec, Parsed, str, UsageError } from './args.js';
import { CliError, EXIT, print, printJson, table } from './output.js';
import { buildImage, BuildError, HookError, OUTPUT_TYPES, OutputType } from '../images/builder/build.js';
import { ElementError } from '../images/builder/elements.js';
import { ToolMissingError } from '../images/builder/exec.js';

async function build(p: Parsed): Promise<number> {
  if (p.args.length === 0) throw new UsageError('missing argument ELEMENT... (e.g. busybox vm)');
  const output = str(p, 'output');
  if (!output) throw new UsageError('--output/-o PATH is required');
  const types = String(p.flags.type).split(',').map((t) => t.trim()).filter(Boolean);
  for (const t of types) if (!OUTPUT_TYPES.includes(t as OutputType)) throw new UsageError(`-t: unknown output type '${t}' (known: ${OUTPUT_TYPES.join(', ')})`);
  const compression = str(p, 'compression') ?? 'gzip';
  if (compression !== 'gzip' && compression !== 'zstd') throw new UsageError(`--compression must be gzip or zstd, got '${compression}'`);
  const epoch = p.flags['source-date-epoch'];
  const json = p.flags.json === true;
  const started = Date.now();
  const stamp = () => `[${((Date.now() - started) / 1000).toFixed(1).padStart(5)}s]`;
  try {
    const r = await buildImage({
      elements: p.args,
      types: types as OutputType[],
      output,
      elementsPath: (p.flags['elements-path'] as string[] | undefined) ?? [],
      cacheDir: str(p, 'cache-dir'),
      useCache: p.flags['no-cache'] !== true,
      sourceDateEpoch: epoch === undefined ? undefined : Number(epoch),
      release: str(p, 'release'),
      mirror: str(p, 'mirror'),
      compression,
      sizeMiB: p.flags.size === undefined ? undefined : Number(p.flags.size),
      verbose: p.flags.verbose === true,
      keepWorkDir: p.flags['keep-work'] === true,
      progress: (l) => process.stderr.write(`${stamp()} ${l}\n`),
    });
    if (json) { printJson({ ...r.manifest, cacheHit: r.cacheHit, seconds: r.seconds, manifestPath: r.manifestPath }); return EXIT.ok; }
    print(table(['artifact', 'size', 'sha256'], r.manifest.artifacts.map((a) => [a.path, a.size, a.sha256])));
    print(`${r.cacheHit ? 'cache hit' : 'built'} in ${r.seconds.toFixed(1)}s; manifest ${r.manifestPath}`);
    return EXIT.ok;
  } catch (e) {
    if (e instanceof ElementError) throw new CliError(e.message, EXIT.usage);
    if (e instanceof HookError || e instanceof BuildError || e instanceof ToolMissingError) throw new CliError(e.message, EXIT.failure);
    throw e;
  }
}

export const commands: CommandSpec[] = [
  {
    path: ['image', 'build'],
    summary: 'Build a disk image or ramdisk from elements (e.g. `-t raw -o out/disk busybox vm`)',
    args: ['ELEMENT...'],
    flags: {
      type: { type: 'string', short: 't', default: 'raw', value: 'raw|qcow2|tar|ramdisk', help: 'output types, comma separated' },
      output: { type: 'string', short: 'o', value: 'PATH', help: 'output path without extension (.raw, .qcow2, .tar, .kernel/.initramfs are added)' },
      'elements-path': { type: 'list', value: 'DIR[:DIR]', help: 'more element directories, searched before OOO_ELEMENTS_PATH and the built-in elements' },
      'cache-dir': { type: 'string', value: 'DIR', help: 'package and build cache (default ~/.cache/ooo/images, or OOO_IMAGE_CACHE_DIR)' },
      'no-cache': { type: 'boolean', help: 'build even if an identical build is cached, and do not store this one' },
      'source-date-epoch': { type: 'number', value: 'SECONDS', help: 'timestamp for every file (default SOURCE_DATE_EPOCH, else 2024-01-01)' },
      release: { type: 'string', value: 'SUITE', help: 'Debian release for the debian base (default bookworm)' },
      mirror: { type: 'string', value: 'URL', help: "Debian mirror (default: the machine's apt mirror)" },
      compression: { type: 'string', value: 'gzip|zstd', help: 'initramfs compression for -t ramdisk (default gzip)' },
      size: { type: 'number', value: 'MIB', help: 'whole-disk size in MiB (default: fitted to the content)' },
      verbose: { type: 'boolean', short: 'v', help: 'show every line hooks print' },
      'keep-work': { type: 'boolean', help: 'keep the work directory (image root, build.log) after a successful build' },
      json: { type: 'boolean', help: 'print the manifest as JSON' },
    },
    run: build,
  },
];
