#!/usr/bin/env node
/**
 * `ooo`: one program, several command groups. Each group lives in its own file under src/cli/
 * and exports `commands`; this file only dispatches.
 */
import { CommandSpec, helpText, parseArgs, UsageError } from './args.js';
import { CliError } from './output.js';

async function loadCommands(): Promise<CommandSpec[]> {
  const groups = await Promise.all([
    import('./seed.js'),
    import('./baremetal.js'),
    import('./image.js'),
    import('./image-service.js'),
    import('./bmc.js'),
    import('./lab.js'),
  ]);
  return groups.flatMap((g) => g.commands as CommandSpec[]);
}

function topHelp(commands: CommandSpec[]): string {
  const rows = commands.map((c) => `  ${c.path.join(' ').padEnd(28)} ${c.summary}`);
  return ['usage: ooo COMMAND [options]', '', 'commands:', ...rows, '', "Run 'ooo COMMAND --help' for a command's options."].join('\n');
}

export async function main(argv: string[]): Promise<number> {
  const commands = await loadCommands();
  if (argv.length === 0 || argv[0] === '--help' || argv[0] === '-h' || argv[0] === 'help') {
    process.stdout.write(topHelp(commands) + '\n');
    return argv.length === 0 ? 2 : 0;
  }
  // Longest matching command path wins.
  let best: CommandSpec | undefined;
  for (const c of commands) {
    if (c.path.every((w, i) => argv[i] === w) && (!best || c.path.length > best.path.length)) best = c;
  }
  if (!best) {
    const group = commands.filter((c) => c.path[0] === argv[0]);
    if (group.length) {
      process.stderr.write(`ooo: unknown command '${argv.slice(0, 2).join(' ')}'\n\n` + topHelp(group) + '\n');
    } else {
      process.stderr.write(`ooo: unknown command '${argv[0]}'. Run 'ooo --help'.\n`);
    }
    return 2;
  }
  const rest = argv.slice(best.path.length);
  if (rest.includes('--help') || rest.includes('-h')) {
    process.stdout.write(helpText(best) + '\n');
    return 0;
  }
  try {
    const parsed = parseArgs(best, rest);
    return await best.run(parsed);
  } catch (e) {
    if (e instanceof UsageError) {
      process.stderr.write(`ooo ${best.path.join(' ')}: ${e.message}\n\n${helpText(best)}\n`);
      return 2;
    }
    if (e instanceof CliError) {
      process.stderr.write(`ooo ${best.path.join(' ')}: ${e.message}\n`);
      return e.exitCode;
    }
    throw e;
  }
}

main(process.argv.slice(2)).then(
  (code) => { process.exitCode = code; },
  (err) => {
    process.stderr.write(`ooo: ${err instanceof Error ? err.stack ?? err.message : String(err)}\n`);
    process.exitCode = 1;
  },
);
