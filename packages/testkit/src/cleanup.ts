/**
 * Runs every cleanup step in order, each one even after an earlier one failed, then fails with what
 * failed: an AggregateError holding every error (its message names each). A close that fails (a
 * server that did not stop, a connection that did not end) fails the test instead of vanishing.
 * A step that is allowed to fail says so itself, with the reason, and catches only that.
 */
export async function closeAll(what: string, steps: readonly (() => unknown)[]): Promise<void> {
  const errors: unknown[] = [];
  for (const step of steps) {
    try {
      await step();
    } catch (error) {
      errors.push(error);
    }
  }
  if (errors.length > 0) {
    const reasons = errors.map((error) => (error instanceof Error ? error.message : String(error)));
    throw new AggregateError(errors, `${what}: ${errors.length} of ${steps.length} steps failed: ${reasons.join('; ')}`);
  }
}
