// A whole agreement life through the generated TypeScript (typescript-fetch) clients: sign,
// amend with If-Match from the ETag, report progress, close the term; then the lead party's
// obligations, its history and the overdue report from the projections. Two refused commands
// show a refusal arriving as the generated ResponseError, its body read into the generated
// Problem model.
//
// Usage: node life.js <registry url> <projections url> <bearer token> <document number>
// Prints one JSON object per step (tests/e2e/test_generated_clients.py reads them); the same
// steps and fields as clients/java/life/src/main/java/coordreg/life/Life.java.

import * as registry from "./registry";
import * as projections from "./projections";

declare const process: { argv: string[]; exitCode: number | undefined };

const LEAD = "mttq-hoa-binh";
const MEMBER = "hctd-hoa-binh";

function print(line: object): void {
  console.log(JSON.stringify(line));
}

function step(name: string, result: registry.AgreementCommandResult): object {
  return {
    step: name,
   
    agreement_id: result.agreementId,
    version: result.version,
    position: result.position,
    status: result.status,
  };
}

async function refusal(name: string, call: () => Promise<unknown>): Promise<object> {
  try {
    await call();
  } catch (error) {
    if (!(error instanceof registry.ResponseError)) {
      throw error;
    }
    const problem: registry.Problem = registry.ProblemFromJSON(await error.response.json());
    return {
      step: name,
      error: error.name,
     
      http_status: error.response.status,
      problem_type: problem.type,
      problem_status: problem.status,
      error_locations: (problem.errors ?? []).map((e) => e["loc"]),
    };
  }
  throw new Error(`${name} was not refused`);
}

function overdue(name: string, report: projections.OverdueReport, id: string): object {
  return {
    step: name,
   
    period: report.period,
    obligations: report.obligations
      .filter((o: projections.OverdueObligation) => o.agreementId === id)
      .map((o) => ({ obligation_id: o.obligationId, lead_party_id: o.leadPartyId })),
  };
}

async function main(): Promise<void> {
  const [registryUrl, projectionsUrl, token, documentNumber] = process.argv.slice(2);
  const headers = { Authorization: `Bearer ${token}` };
  const agreements = new registry.AgreementsApi(new registry.Configuration({ basePath: registryUrl, headers }));
  const query = new projections.Configuration({ basePath: projectionsUrl, headers });
  const parties = new projections.PartiesApi(query);
  const reports = new projections.ReportsApi(query);

  const signing: registry.SignAgreement = {
    documentNumber,
    kind: registry.SignAgreementKindEnum.Program,
    title: "Chương trình phối hợp công tác vì người nghèo, an sinh xã hội và cứu trợ",
    locality: "Hòa Bình",
    signedOn: new Date("2023-04-25"),
    term: { start: new Date("2023-01-01"), end: new Date("2027-12-31") },
    parties: [
      {
        partyId: LEAD,
        name: "Ủy ban MTTQ Việt Nam tỉnh Hòa Bình",
        role: registry.Role.Lead,
        signatory: { name: "Bùi Tiến Lực", title: "Chủ tịch" },
      },
      { partyId: MEMBER, name: "Hội Chữ thập đỏ tỉnh Hòa Bình", role: registry.Role.Member },
    ],
    obligations: [
      {
        obligationId: "nhan-dao",
        title: "Tổ chức hoạt động nhân đạo, từ thiện và an sinh xã hội",
        leadPartyId: LEAD,
        supportingPartyIds: [MEMBER],
        cadence: registry.Cadence.Annual,
      },
    ],
  };
  // Sign: the ETag of the answer is the version an amendment names in If-Match.
  const signed = await agreements.signAgreementRaw({ signAgreement: signing, idempotencyKey: crypto.randomUUID() });
  const sign = await signed.value();
  const etag = signed.raw.headers.get("etag");
  if (etag === null) {
    throw new Error("no ETag on the signing's answer");
  }
  const id = sign.agreementId;
  print({ ...step("sign", sign), etag, http_status: signed.raw.status });

  const amendment: registry.AmendAgreement = {
    documentNumber: "12/QĐ-MTTQ-BTT",
    reason: "Bổ sung nội dung chuyển đổi số",
    effectiveOn: new Date("2024-03-01"),
    changes: [
      {
        op: registry.AddObligationOpEnum.AddObligation,
        obligation: {
          obligationId: "chuyen-doi-so",
          title: "Phối hợp chuyển đổi số trong công tác nhân đạo",
          leadPartyId: MEMBER,
          supportingPartyIds: [LEAD],
          cadence: registry.Cadence.Annual,
        },
      },
    ],
  };
  const amended = await agreements.amendAgreementRaw({
    agreementId: id,
    amendAgreement: amendment,
    idempotencyKey: crypto.randomUUID(),
    ifMatch: etag,
  });
  print({ ...step("amend", await amended.value()), if_match: etag, etag: amended.raw.headers.get("etag") });

  // Refused: the same amendment naming the signing's version, now stale.
  print(await refusal("amend_stale", () => agreements.amendAgreement({ agreementId: id, amendAgreement: amendment, ifMatch: etag })));

  const reported = await agreements.reportProgress({
    agreementId: id,
    idempotencyKey: crypto.randomUUID(),
    reportProgress: {
      obligationId: "nhan-dao",
      partyId: LEAD,
      period: "2024",
      status: registry.ReportStatus.InProgress,
      completionPercent: 60,
      summary: "Vận động 1,2 tỷ đồng quỹ Vì người nghèo",
      reportedOn: new Date("2024-12-20"),
      evidence: [{ documentNumber: "45/BC-MTTQ", title: "Báo cáo kết quả năm 2024" }],
    },
  });
  print(step("report", reported));

  // Refused: a period after the term.
  print(
    await refusal("report_outside_term", () =>
      agreements.reportProgress({
        agreementId: id,
        reportProgress: {
          obligationId: "nhan-dao",
          partyId: LEAD,
          period: "2031",
          status: registry.ReportStatus.NotStarted,
          reportedOn: new Date("2024-12-20"),
        },
      }),
    ),
  );

  // Before the closing: the new obligation has no report from its lead for 2024.
  const due = await reports.listOverdueObligations({ period: "2024", limit: 500, minPosition: reported.position });
  print(overdue("overdue_before_close", due, id));

  const closed = await agreements.closeTerm({
    agreementId: id,
    idempotencyKey: crypto.randomUUID(),
    closeTerm: {
      closedOn: new Date("2025-06-30"),
      outcome: registry.Outcome.Completed,
      summary: "Tổng kết chương trình phối hợp",
    },
  });
  print(step("close", closed));
  const last = closed.position;

  const held: projections.PartyObligations = await parties.listPartyObligations({
    partyId: LEAD,
    status: projections.ListPartyObligationsStatusEnum.All,
    limit: 500,
    minPosition: last,
  });
  print({
    step: "obligations",
   
    party_id: held.partyId,
    obligations: held.obligations
      .filter((o: projections.ObligationsInner) => o.agreementId === id)
      .map((o) => ({
       
        obligation_id: o.obligationId,
        role: o.role,
        status: o.status,
        cadence: o.cadence,
        latest_report:
          o.latestReport == null
            ? null
            : {
                period: o.latestReport.period,
                status: o.latestReport.status,
                completion_percent: o.latestReport.completionPercent,
                reported_on: o.latestReport.reportedOn,
              },
      })),
  });

  const history: projections.PartyHistory = await parties.listPartyHistory({ partyId: LEAD, limit: 500, minPosition: last });
  print({
    step: "history",
   
    events: history.events
      .filter((e: projections.HistoryLine) => e.agreementId === id)
      .map((e) => ({ type: e.type, sequence: e.sequence, position: e.position })),
  });

  print(overdue("overdue_after_close", await reports.listOverdueObligations({ period: "2024", limit: 500, minPosition: last }), id));
}

main().catch((error: unknown) => {
  console.error(error);
  process.exitCode = 1;
});
