import type { FastifyInstance } from 'fastify';
import type {
  AuthorizeInput,
  CancelInput,
  CloseDisputeInput,
  DisputeInput,
  FailInput,
  FailRefundInput,
  PartiallyFundInput,
  RefundInput,
  StripeEmulatorController,
  SucceedInput,
  ThinEventInput,
} from '../controller.js';
import type { DeliveryKnobs } from '../config.js';

/** What the `/_emulator` routes drive. */
export interface ControlRoutesOptions {
  controller: StripeEmulatorController;
}

type WithId<Body> = { Params: { id: string }; Body: Body | undefined };

/**
 * The emulator's own routes (no auth, JSON bodies): what a customer, a bank or the dashboard
 * would do, plus runtime knobs and counters. Bodies are validated by the controller.
 * Register with `prefix: '/_emulator'`.
 */
export async function controlRoutes(app: FastifyInstance, { controller }: ControlRoutesOptions): Promise<void> {
  app.post<WithId<SucceedInput>>('/payment_intents/:id/succeed', async (request) =>
    controller.succeedPaymentIntent(request.params.id, request.body),
  );
  app.post<WithId<FailInput>>('/payment_intents/:id/fail', async (request) =>
    controller.failPaymentIntent(request.params.id, request.body),
  );
  app.post<WithId<CancelInput>>('/payment_intents/:id/cancel', async (request) =>
    controller.cancelPaymentIntent(request.params.id, request.body),
  );
  app.post<WithId<never>>('/payment_intents/:id/processing', async (request) => controller.markPaymentIntentProcessing(request.params.id));
  app.post<WithId<RefundInput>>('/payment_intents/:id/refund', async (request) =>
    controller.refundPaymentIntent(request.params.id, request.body),
  );
  app.post<WithId<FailRefundInput>>('/refunds/:id/fail', async (request) => controller.failRefund(request.params.id, request.body));
  app.post<WithId<DisputeInput>>('/payment_intents/:id/dispute', async (request) =>
    controller.disputePaymentIntent(request.params.id, request.body),
  );
  app.post<WithId<CloseDisputeInput>>('/disputes/:id/close', async (request) => controller.closeDispute(request.params.id, request.body));
  app.post<WithId<never>>('/disputes/:id/escalate', async (request) => controller.escalateDispute(request.params.id));
  app.post<{ Params: { id: string }; Body: PartiallyFundInput }>('/payment_intents/:id/partially_fund', async (request) =>
    controller.partiallyFundPaymentIntent(request.params.id, request.body),
  );
  app.post<WithId<AuthorizeInput>>('/payment_intents/:id/authorize', async (request) =>
    controller.authorizePaymentIntent(request.params.id, request.body),
  );
  app.post<{ Body: ThinEventInput }>('/thin_events', async (request) => controller.createThinEvent(request.body));
  app.post<WithId<{ endpoint?: string }>>('/events/:id/deliver', async (request) =>
    controller.redeliverEvent(request.params.id, request.body?.endpoint),
  );
  app.get('/stats', async () => controller.stats());
  app.get('/config', async () => controller.config());
  app.post<{ Body: DeliveryKnobs | undefined }>('/config', async (request) => controller.configure(request.body ?? {}));
}
