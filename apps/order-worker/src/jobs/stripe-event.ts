import { eventOutOfScope, isDatabaseUnavailableError, type StripeEventJob, type StripeScope } from '@ledger/shared';
import {
  applyPaymentFacts,
  recordEventFailure,
  recordEventNotOurs,
  type ApplyResult,
  type EventSource,
  type FactOrder,
  type PaymentFact,
} from '@ledger/ledger';
import { UnrecoverableError } from 'bullmq';
import { MalformedEventError, paymentFactsFromEvent, resolveStripeLookup } from '../facts/from-event.js';
import { countOutcomes, readJob, type JobLog, type OrderWorkerDeps } from './job-kit.js';

const TEST_MODE_SCOPE: StripeScope = { livemode: false, connectedAccounts: new Set() };

/**
 * The order and account a line about this event names: those the ledger found, else those our
 * PaymentIntents carry in metadata (an event already processed is not looked up again).
 */
function orderFields(event: StripeEventJob, order: FactOrder | undefined): { orderId?: string; accountId?: string } {
  if (order) return order;
  const metadata = event.object.metadata as { order_id?: unknown; account_id?: unknown } | null | undefined;
  return {
    ...(typeof metadata?.order_id === 'string' ? { orderId: metadata.order_id } : {}),
    ...(typeof metadata?.account_id === 'string' ? { accountId: metadata.account_id } : {}),
  };
}

function eventSource(event: StripeEventJob): EventSource {
  const objectId = typeof event.object.id === 'string' ? event.object.id : null;
  return { id: event.id, type: event.type, objectId, created: event.created };
}

/** Applies one queued Stripe event (a `stripeEvents` job). Exported for tests and replay; the worker calls it per job. */
export async function processStripeEvent(
  deps: Pick<OrderWorkerDeps, 'prisma' | 'metrics' | 'scope' | 'batcher'> & { stripe?: OrderWorkerDeps['stripe'] | undefined },
  data: unknown,
  log: JobLog,
): Promise<ApplyResult> {
  const event = readJob('stripeEvents', data);
  const source = eventSource(event);
  // The receiver already answers these without queueing; replay and old jobs can still bring one.
  const outOfScope = eventOutOfScope(event, deps.scope ?? TEST_MODE_SCOPE);
  if (outOfScope) {
    const eventIsNew = await recordEventNotOurs(deps.prisma, source, outOfScope);
    deps.metrics.facts.inc({ kind: 'event', outcome: 'not_ours' });
    log.warn(
      { eventId: event.id, ...orderFields(event, undefined), reason: outOfScope },
      "event is not this deployment's; recorded, not applied",
    );
    return { eventIsNew, outcomes: ['not_ours'], details: [outOfScope], credited: 0 };
  }
  let facts: PaymentFact[];
  try {
    const reading = paymentFactsFromEvent(event);
    if (Array.isArray(reading)) facts = reading;
    else {
      // The payload lacks what the facts need (e.g. a charge.refunded at an API version that no
      // longer lists refunds): Stripe is asked. Its failures retry the job like any other.
      if (!deps.stripe)
        throw new Error(`${event.type} ${event.id} needs a Stripe lookup (${reading.lookup}) and no Stripe client was given`);
      facts = await resolveStripeLookup(deps.stripe, reading);
      log.info(
        { eventId: event.id, ...orderFields(event, undefined), lookup: reading.lookup, facts: facts.length },
        'asked Stripe what the event left out',
      );
    }
  } catch (error) {
    if (!(error instanceof MalformedEventError)) throw error;
    await recordEventFailure(deps.prisma, source, error.message);
    throw new UnrecoverableError(error.message);
  }
  let result: ApplyResult;
  try {
    result = await applyPaymentFacts(deps.prisma, facts, source, { batcher: deps.batcher });
  } catch (error) {
    await recordEventFailure(deps.prisma, source, error instanceof Error ? error.message : String(error)).catch((recordError: unknown) => {
      // With PostgreSQL down this fails for every job; the outage itself is logged once.
      log[isDatabaseUnavailableError(recordError) ? 'debug' : 'warn'](
        { err: recordError },
        'could not record the failed attempt in the inbox',
      );
    });
    throw error;
  }
  countOutcomes(deps.metrics, facts, result);
  if (result.credited > 0) deps.metrics.eventToCredit.observe(Math.max(0, Date.now() / 1000 - event.created));
  const fields = {
    eventId: event.id,
    ...orderFields(event, result.order),
    eventIsNew: result.eventIsNew,
    outcomes: result.outcomes,
    ...(result.details.length > 0 ? { details: result.details } : {}),
  };
  if (result.outcomes.includes('held')) log.warn(fields, 'event held for an operator (npm run review -- list)');
  else log.info(fields, result.eventIsNew ? 'event applied' : 'event already processed');
  return result;
}
