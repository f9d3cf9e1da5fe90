import { parseArgs } from 'node:util';

/** Exit code for a bad option or argument (sysexits' EX_USAGE, as `npm run replay` always used). */
const EXIT_USAGE = 64;

/** One option of a command: how `parseArgs` reads it and how `--help` shows it. */
export interface OptionSpec {
  type: 'string' | 'boolean';
  short?: string;
  /** Shown after the flag in `--help`, e.g. `N` for `--orders N`. */
  value?: string;
  description: string;
}

/** What `--help` prints: usage, options, environment, exit codes. */
export interface CommandSpec<O extends Record<string, OptionSpec>> {
  /** How to call it, e.g. `npm run replay -- <event id>… | --failed`. */
  usage: string;
  /** What it does, a sentence or two. */
  summary: string;
  options?: O;
  /** Positional arguments are refused unless this describes them. */
  positionals?: string;
  /** Variables it reads (names; the README's Configuration table says what each means). */
  environment?: readonly string[];
  exitCodes: readonly (readonly [number, string])[];
}

type Values<O extends Record<string, OptionSpec>> = {
  [K in keyof O]?: O[K]['type'] extends 'boolean' ? boolean : string;
};

/** The `--help` text of a command. */
function helpText(spec: CommandSpec<Record<string, OptionSpec>>): string {
  const lines = [`Usage: ${spec.usage}`, '', spec.summary];
  const options = Object.entries(spec.options ?? {}).map(([name, option]) => {
    const flag = `${option.short ? `-${option.short}, ` : ''}--${name}${option.value ? ` ${option.value}` : ''}`;
    return [flag, option.description] as const;
  });
  options.push(['-h, --help', 'print this help and exit']);
  const width = Math.max(...options.map(([flag]) => flag.length));
  lines.push('', 'Options:', ...options.map(([flag, text]) => `  ${flag.padEnd(width)}  ${text}`));
  if (spec.positionals) lines.push('', `Arguments: ${spec.positionals}`);
  if (spec.environment?.length) lines.push('', `Environment (see the README's Configuration): ${spec.environment.join(', ')}`);
  lines.push('', 'Exit codes:', ...spec.exitCodes.map(([code, meaning]) => `  ${String(code).padStart(3)}  ${meaning}`));
  return `${lines.join('\n')}\n`;
}

/** Prints one line naming the problem (and the usage, when given) and exits with {@link EXIT_USAGE}. */
export function usageError(command: string, problem: string, usage?: string): never {
  process.stderr.write(`${command}: ${problem}${usage ? `; usage: ${usage}` : ''} (see --help)\n`);
  process.exit(EXIT_USAGE);
}

/**
 * Reads the command line strictly: `--help` prints {@link helpText} and exits 0; an unknown option,
 * a missing value or an unexpected argument prints one line and exits {@link EXIT_USAGE}.
 */
export function parseCommandLine<O extends Record<string, OptionSpec>>(
  command: string,
  spec: CommandSpec<O>,
  args: string[] = process.argv.slice(2),
): { values: Values<O>; positionals: string[] } {
  const options = Object.fromEntries(
    Object.entries(spec.options ?? {}).map(([name, { type, short }]) => [name, short ? { type, short } : { type }]),
  );
  let parsed: ReturnType<
    typeof parseArgs<{
      args: string[];
      options: typeof options & { help: { type: 'boolean'; short: 'h' } };
      allowPositionals: boolean;
      strict: true;
    }>
  >;
  try {
    parsed = parseArgs({
      args,
      options: { ...options, help: { type: 'boolean', short: 'h' } },
      allowPositionals: spec.positionals !== undefined,
      strict: true,
    });
  } catch (error) {
    const code = (error as { code?: string }).code;
    if (!code?.startsWith('ERR_PARSE_ARGS')) throw error;
    // Node's message goes on about how to pass a positional starting with "-": the first sentence says it.
    usageError(command, (error as Error).message.split('. ')[0] ?? '', spec.usage);
  }
  if (parsed.values.help) {
    process.stdout.write(helpText(spec));
    process.exit(0);
  }
  const { help: _help, ...values } = parsed.values;
  return { values: values as Values<O>, positionals: parsed.positionals };
}
