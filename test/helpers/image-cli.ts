/**
 * Runs the `ooo image ...` service commands (src/cli/image-service.ts) the way src/cli/main.ts
 * dispatches them: `node dist/test/helpers/image-cli.js image list --json`.
 */
import { commands } from '../../src/cli/image-service.js';
import { helpText, parseArgs, UsageError } from '../../src/cli/args.js';
import { CliError } from '../../src/cli/output.js';

const argv = process.argv.slice(2);
const spec = commands.filter((c) => c.path.every((w, i) => argv[i] === w)).sort((a, b) => b.path.length - a.path.length)[0];
if (!spec) {
  process.stderr.write(`unknown command '${argv.join(' ')}'\n`);
  process.exitCode = 2;
} else {
  try {
    process.exitCode = await spec.run(parseArgs(spec, argv.slice(spec.path.length)));
  } catch (e) {
    if (e instanceof UsageError) { process.stderr.write(`ooo ${spec.path.join(' ')}: ${e.message}\n\n${helpText(spec)}\n`); process.exitCode = 2; }
    else if (e instanceof CliError) { process.stderr.write(`ooo ${spec.path.join(' ')}: ${e.message}\n`); process.exitCode = e.exitCode; }
    else throw e;
  }
}
