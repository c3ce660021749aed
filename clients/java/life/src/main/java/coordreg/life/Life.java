package coordreg.life;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.net.http.HttpClient;
import java.time.LocalDate;
import java.util.List;
import java.util.Map;
import java.util.UUID;
import vn.gov.coordreg.projections.api.PartiesApi;
import vn.gov.coordreg.projections.api.ReportsApi;
import vn.gov.coordreg.projections.model.HeldObligation;
import vn.gov.coordreg.projections.model.HistoryLine;
import vn.gov.coordreg.projections.model.ObligationsInner;
import vn.gov.coordreg.projections.model.OverdueObligation;
import vn.gov.coordreg.projections.model.OverdueReport;
import vn.gov.coordreg.projections.model.PartyHistory;
import vn.gov.coordreg.projections.model.PartyObligations;
import vn.gov.coordreg.registry.ApiClient;
import vn.gov.coordreg.registry.ApiException;
import vn.gov.coordreg.registry.ApiResponse;
import vn.gov.coordreg.registry.api.AgreementsApi;
import vn.gov.coordreg.registry.model.AddObligation;
import vn.gov.coordreg.registry.model.AgreementCommandResult;
import vn.gov.coordreg.registry.model.AmendAgreement;
import vn.gov.coordreg.registry.model.Cadence;
import vn.gov.coordreg.registry.model.ChangesInner;
import vn.gov.coordreg.registry.model.CloseTerm;
import vn.gov.coordreg.registry.model.Evidence;
import vn.gov.coordreg.registry.model.Obligation;
import vn.gov.coordreg.registry.model.Outcome;
import vn.gov.coordreg.registry.model.Party;
import vn.gov.coordreg.registry.model.Problem;
import vn.gov.coordreg.registry.model.ReportProgress;
import vn.gov.coordreg.registry.model.ReportStatus;
import vn.gov.coordreg.registry.model.Role;
import vn.gov.coordreg.registry.model.SignAgreement;
import vn.gov.coordreg.registry.model.Signatory;
import vn.gov.coordreg.registry.model.Term;

/**
 * A whole agreement life through the generated Java clients: sign, amend with If-Match from the
 * ETag, report progress, close the term; then the lead party's obligations, its history and the
 * overdue report from the projections. Two refused commands show a refusal arriving as the
 * generated ApiException whose body reads into the generated Problem model.
 *
 * <p>Usage: {@code Life <registry url> <projections url> <bearer token> <document number>}.
 * Prints one JSON object per step on standard output (tests/e2e/test_generated_clients.py reads
 * them); the same steps and fields as clients/ts/life.ts.
 */
public final class Life {
  private static final ObjectMapper OUT = new ObjectMapper();
  private static final String LEAD = "mttq-hoa-binh";
  private static final String MEMBER = "hctd-hoa-binh";

  private Life() {}

  public static void main(String[] args) throws Exception {
    String registryUrl = args[0];
    String projectionsUrl = args[1];
    String token = args[2];
    String documentNumber = args[3];

    // HTTP/1.1: java.net.http starts a cleartext connection with an `Upgrade: h2c` request, which
    // uvicorn refuses, losing that request's body (docs/CLIENTS.md).
    HttpClient.Builder http = HttpClient.newBuilder().version(HttpClient.Version.HTTP_1_1);
    ApiClient registryClient = new ApiClient(http, ApiClient.createDefaultObjectMapper(), registryUrl);
    registryClient.setRequestInterceptor(r -> r.header("Authorization", "Bearer " + token));
    AgreementsApi agreements = new AgreementsApi(registryClient);

    vn.gov.coordreg.projections.ApiClient queryClient =
        new vn.gov.coordreg.projections.ApiClient(
            http, vn.gov.coordreg.projections.ApiClient.createDefaultObjectMapper(), projectionsUrl);
    queryClient.setRequestInterceptor(r -> r.header("Authorization", "Bearer " + token));
    PartiesApi parties = new PartiesApi(queryClient);
    ReportsApi reports = new ReportsApi(queryClient);

    // Sign: the ETag of the answer is the version an amendment names in If-Match.
    SignAgreement signing =
        new SignAgreement()
            .documentNumber(documentNumber)
            .kind(SignAgreement.KindEnum.PROGRAM)
            .title("Chương trình phối hợp công tác vì người nghèo, an sinh xã hội và cứu trợ")
            .locality("Hòa Bình")
            .signedOn(LocalDate.parse("2023-04-25"))
            .term(new Term().start(LocalDate.parse("2023-01-01")).end(LocalDate.parse("2027-12-31")))
            .addPartiesItem(
                new Party()
                    .partyId(LEAD)
                    .name("Ủy ban MTTQ Việt Nam tỉnh Hòa Bình")
                    .role(Role.LEAD)
                    .signatory(new Signatory().name("Bùi Tiến Lực").title("Chủ tịch")))
            .addPartiesItem(
                new Party().partyId(MEMBER).name("Hội Chữ thập đỏ tỉnh Hòa Bình").role(Role.MEMBER))
            .addObligationsItem(
                new Obligation()
                    .obligationId("nhan-dao")
                    .title("Tổ chức hoạt động nhân đạo, từ thiện và an sinh xã hội")
                    .leadPartyId(LEAD)
                    .addSupportingPartyIdsItem(MEMBER)
                    .cadence(Cadence.ANNUAL));
    ApiResponse<AgreementCommandResult> signed =
        agreements.signAgreementWithHttpInfo(signing, UUID.randomUUID().toString());
    AgreementCommandResult sign = signed.getData();
    String etag = header(signed.getHeaders(), "etag");
    String id = sign.getAgreementId();
    print(step("sign", sign).put("etag", etag).put("http_status", signed.getStatusCode()));

    AmendAgreement amendment =
        new AmendAgreement()
            .documentNumber("12/QĐ-MTTQ-BTT")
            .reason("Bổ sung nội dung chuyển đổi số")
            .effectiveOn(LocalDate.parse("2024-03-01"))
            .addChangesItem(
                new ChangesInner(
                    new AddObligation()
                        .op(AddObligation.OpEnum.ADD_OBLIGATION)
                        .obligation(
                            new Obligation()
                                .obligationId("chuyen-doi-so")
                                .title("Phối hợp chuyển đổi số trong công tác nhân đạo")
                                .leadPartyId(MEMBER)
                                .addSupportingPartyIdsItem(LEAD)
                                .cadence(Cadence.ANNUAL))));
    ApiResponse<AgreementCommandResult> amended =
        agreements.amendAgreementWithHttpInfo(id, amendment, UUID.randomUUID().toString(), etag);
    print(
        step("amend", amended.getData())
            .put("if_match", etag)
            .put("etag", header(amended.getHeaders(), "etag")));

    // Refused: the same amendment naming the signing's version, now stale.
    print(refusal("amend_stale", () -> agreements.amendAgreement(id, amendment, null, etag)));

    ReportProgress report =
        new ReportProgress()
            .obligationId("nhan-dao")
            .partyId(LEAD)
            .period("2024")
            .status(ReportStatus.IN_PROGRESS)
            .completionPercent(60)
            .summary("Vận động 1,2 tỷ đồng quỹ Vì người nghèo")
            .reportedOn(LocalDate.parse("2024-12-20"))
            .addEvidenceItem(
                new Evidence().documentNumber("45/BC-MTTQ").title("Báo cáo kết quả năm 2024"));
    AgreementCommandResult reported =
        agreements.reportProgress(id, report, UUID.randomUUID().toString());
    print(step("report", reported));

    // Refused: a period after the term.
    ReportProgress late =
        new ReportProgress()
            .obligationId("nhan-dao")
            .partyId(LEAD)
            .period("2031")
            .status(ReportStatus.NOT_STARTED)
            .reportedOn(LocalDate.parse("2024-12-20"));
    print(refusal("report_outside_term", () -> agreements.reportProgress(id, late, null)));

    // Before the closing: the new obligation has no report from its lead for 2024.
    OverdueReport due = reports.listOverdueObligations("2024", null, 500, null, reported.getPosition());
    print(overdue("overdue_before_close", due, id));

    AgreementCommandResult closed =
        agreements.closeTerm(
            id,
            new CloseTerm()
                .closedOn(LocalDate.parse("2025-06-30"))
                .outcome(Outcome.COMPLETED)
                .summary("Tổng kết chương trình phối hợp"),
            UUID.randomUUID().toString());
    print(step("close", closed));
    int last = closed.getPosition();

    PartyObligations held = parties.listPartyObligations(LEAD, "all", 500, null, last);
    ObjectNode line = OUT.createObjectNode().put("step", "obligations").put("model", held.getClass().getSimpleName());
    line.put("party_id", held.getPartyId());
    ArrayNode items = line.putArray("obligations");
    for (ObligationsInner item : held.getObligations()) {
      HeldObligation obligation = item.getHeldObligation();
      if (!id.equals(obligation.getAgreementId())) {
        continue;
      }
      ObjectNode o =
          items
              .addObject()
              .put("model", obligation.getClass().getSimpleName())
              .put("obligation_id", obligation.getObligationId())
              .put("role", obligation.getRole())
              .put("status", obligation.getStatus())
              .put("cadence", obligation.getCadence());
      if (obligation.getLatestReport() != null) {
        o.putObject("latest_report")
            .put("period", obligation.getLatestReport().getPeriod())
            .put("status", obligation.getLatestReport().getStatus())
            .put("completion_percent", obligation.getLatestReport().getCompletionPercent())
            .put("reported_on", obligation.getLatestReport().getReportedOn());
      } else {
        o.putNull("latest_report");
      }
    }
    print(line);

    PartyHistory history = parties.listPartyHistory(LEAD, 500, null, last);
    ObjectNode lines = OUT.createObjectNode().put("step", "history").put("model", history.getClass().getSimpleName());
    ArrayNode events = lines.putArray("events");
    for (HistoryLine event : history.getEvents()) {
      if (id.equals(event.getAgreementId())) {
        events
            .addObject()
            .put("model", event.getClass().getSimpleName())
            .put("type", event.getType())
            .put("sequence", event.getSequence())
            .put("position", event.getPosition());
      }
    }
    print(lines);

    print(overdue("overdue_after_close", reports.listOverdueObligations("2024", null, 500, null, last), id));
  }

  interface Call {
    Object run() throws ApiException;
  }

  /** A refused command: the generated ApiException, its body read into the generated Problem. */
  private static ObjectNode refusal(String name, Call call) throws Exception {
    try {
      call.run();
    } catch (ApiException refused) {
      Problem problem = new vn.gov.coordreg.registry.JSON().getMapper().readValue(refused.getResponseBody(), Problem.class);
      ObjectNode line =
          OUT.createObjectNode()
              .put("step", name)
              .put("error", refused.getClass().getName())
              .put("model", problem.getClass().getSimpleName())
              .put("http_status", refused.getCode())
              .put("problem_type", problem.getType())
              .put("problem_status", problem.getStatus());
      ArrayNode locations = line.putArray("error_locations");
      if (problem.getErrors() != null) {
        for (Map<String, Object> error : problem.getErrors()) {
          locations.add(OUT.valueToTree(error.get("loc")));
        }
      }
      return line;
    }
    throw new IllegalStateException(name + " was not refused");
  }

  private static ObjectNode step(String name, AgreementCommandResult result) {
    return OUT.createObjectNode()
        .put("step", name)
        .put("model", result.getClass().getSimpleName())
        .put("agreement_id", result.getAgreementId())
        .put("version", result.getVersion())
        .put("position", result.getPosition())
        .put("status", result.getStatus().getValue());
  }

  private static ObjectNode overdue(String name, OverdueReport report, String id) {
    ObjectNode line =
        OUT.createObjectNode()
            .put("step", name)
            .put("model", report.getClass().getSimpleName())
            .put("period", report.getPeriod());
    ArrayNode items = line.putArray("obligations");
    for (OverdueObligation item : report.getObligations()) {
      if (id.equals(item.getAgreementId())) {
        items
            .addObject()
            .put("model", item.getClass().getSimpleName())
            .put("obligation_id", item.getObligationId())
            .put("lead_party_id", item.getLeadPartyId());
      }
    }
    return line;
  }

  private static String header(Map<String, List<String>> headers, String name) {
    for (Map.Entry<String, List<String>> entry : headers.entrySet()) {
      if (entry.getKey().equalsIgnoreCase(name)) {
        return entry.getValue().get(0);
      }
    }
    throw new IllegalStateException("no " + name + " header");
  }

  private static void print(ObjectNode line) throws Exception {
    System.out.println(OUT.writeValueAsString(line));
  }
}
