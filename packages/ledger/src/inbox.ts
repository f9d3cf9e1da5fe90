import type { Prisma, PrismaClient } from '@ledger/shared';
import * as statements from './statements.js';
import type { EventSource, EventStatus, FactResult } from './types.js';

// The inbox (stripe_events): what happened to each Stripe event. Claimed in the transaction that
// applies its facts; failures and events that are not ours are recorded on their own.

/**
 * Inserts the event into the inbox, or takes over a row a failed attempt left or a held event
 * (held facts are looked at again: an operator may have fixed the cause). Returns false when the
 * event was already done. Concurrent claims of one id wait on the row and then see it done.
 */
export async function claimEvent(tx: Prisma.TransactionClient, source: EventSource): Promise<boolean> {
  return (await tx.$queryRaw<{ id: string }[]>(statements.claimEvent(source))).length > 0;
}

/** Records what happened to a claimed event when it is not simply processed (the claim's status). */
export async function settleEvent(tx: Prisma.TransactionClient, eventId: string, status: EventStatus, details: string[]): Promise<void> {
  if (status !== 'processed') await tx.$executeRaw(statements.setEventStatus(eventId, status, details.join('; ') || null));
}

/** The inbox status of an event whose facts had these results. Held beats everything: it is not done. */
export function eventStatusOf(results: FactResult[]): EventStatus {
  if (results.some((result) => result.outcome === 'held')) return 'held';
  if (results.length > 0 && results.every((result) => result.outcome === 'not_ours')) return 'not_ours';
  if (results.length > 0 && results.every((result) => result.outcome === 'already_applied')) return 'duplicate';
  return 'processed';
}

/** Records a failed attempt outside the (rolled back) transaction, so operators see it. */
export async function recordEventFailure(prisma: PrismaClient, source: EventSource, error: string): Promise<void> {
  await prisma.$executeRaw(statements.recordEventFailure(source, error));
}

/** Records an event that is not this deployment's (another mode, a connected account) as such. */
export async function recordEventNotOurs(prisma: PrismaClient, source: EventSource, reason: string): Promise<boolean> {
  return (await prisma.$executeRaw(statements.recordEventNotOurs(source, reason))) > 0;
}
