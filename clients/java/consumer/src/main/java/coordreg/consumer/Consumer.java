package coordreg.consumer;

import com.fasterxml.jackson.databind.DeserializationFeature;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.cloudevents.CloudEvent;
import io.cloudevents.kafka.KafkaMessageFactory;
import java.math.BigDecimal;
import java.math.MathContext;
import java.math.RoundingMode;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.KeyFactory;
import java.security.MessageDigest;
import java.security.PublicKey;
import java.security.Signature;
import java.security.spec.X509EncodedKeySpec;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Base64;
import java.util.HashMap;
import java.util.HexFormat;
import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.common.header.Header;
import org.apache.kafka.common.serialization.ByteArrayDeserializer;
import org.apache.kafka.common.serialization.StringDeserializer;

/**
 * An event consumer in Java, as the README's consumer's guide tells an integrator: it connects as
 * the read-only consumer principal (SCRAM-SHA-512 over TLS, the operator's CA), reads the events
 * topic from the beginning with read_committed, decodes each record as a CloudEvent, and applies
 * a record only if it is the registry's next event of its stream: its {@code hash} recomputed
 * (SHA-256 of the canonical JSON of the envelope without {@code hash} and {@code position}), its
 * {@code envelope-signature} header verified (Ed25519, the published event keys), and its
 * {@code prevhash} equal to the hash of the last event applied for its subject.
 *
 * <p>It prints one JSON line per record and a summary line. Usage:
 *
 * <pre>
 * kafka BOOTSTRAP USERNAME PASSWORD_FILE CA_FILE TOPIC GROUP EXPECTED TIMEOUT_SECONDS KEY...
 * file RECORDS_JSON KEY...   (records: [{"key", "value", "signature"}], as read from a topic)
 * </pre>
 *
 * KEY: the registry's event keys, as GET /v1/event-keys gives them (current and retired).
 */
public final class Consumer {
    private static final ObjectMapper JSON =
            new ObjectMapper().enable(DeserializationFeature.USE_BIG_INTEGER_FOR_INTS);
    private static final String SIGNATURE_HEADER = "envelope-signature";
    // DER prefix of an Ed25519 SubjectPublicKeyInfo (RFC 8410): the raw 32-byte key follows.
    private static final byte[] ED25519_SPKI = HexFormat.of().parseHex("302a300506032b6570032100");

    private final Map<String, PublicKey> trusted = new HashMap<>(); // key name + hex key ID -> key
    private final Map<String, Long> appliedSequence = new HashMap<>(); // subject -> last sequence
    private final Map<String, String> appliedHash = new HashMap<>(); // subject -> its hash
    private int records;
    private int applied;
    private int duplicates;
    private int setAside;

    Consumer(List<String> verifierKeys) throws Exception {
        KeyFactory ed25519 = KeyFactory.getInstance("Ed25519");
        for (String verifierKey : verifierKeys) {
            String[] parts = verifierKey.split("\\+", 3); // name + hex key ID + base64(0x01 || key)
            byte[] encoded = Base64.getDecoder().decode(parts[2]);
            if (encoded.length != 33 || encoded[0] != 1) {
                throw new IllegalArgumentException("not an Ed25519 verifier key: " + verifierKey);
            }
            byte[] spki = new byte[ED25519_SPKI.length + 32];
            System.arraycopy(ED25519_SPKI, 0, spki, 0, ED25519_SPKI.length);
            System.arraycopy(encoded, 1, spki, ED25519_SPKI.length, 32);
            trusted.put(parts[0] + "+" + parts[1].toLowerCase(), ed25519.generatePublic(new X509EncodedKeySpec(spki)));
        }
    }

    // --- canonical JSON, as Python's json.dumps(sort_keys=True, separators=(",", ":"), ensure_ascii=False)

    static String canonicalJson(JsonNode node) {
        StringBuilder out = new StringBuilder();
        write(node, out);
        return out.toString();
    }

    private static void write(JsonNode node, StringBuilder out) {
        if (node.isObject()) {
            List<String> names = new ArrayList<>();
            node.fieldNames().forEachRemaining(names::add);
            names.sort(Consumer::compareCodePoints); // Python sorts str by code point, not UTF-16 unit
            out.append('{');
            for (int i = 0; i < names.size(); i++) {
                if (i > 0) out.append(',');
                writeString(names.get(i), out);
                out.append(':');
                write(node.get(names.get(i)), out);
            }
            out.append('}');
        } else if (node.isArray()) {
            out.append('[');
            for (int i = 0; i < node.size(); i++) {
                if (i > 0) out.append(',');
                write(node.get(i), out);
            }
            out.append(']');
        } else if (node.isTextual()) {
            writeString(node.textValue(), out);
        } else if (node.isIntegralNumber()) {
            out.append(node.bigIntegerValue().toString());
        } else if (node.isNumber()) {
            out.append(pythonFloat(node.doubleValue()));
        } else if (node.isBoolean()) {
            out.append(node.booleanValue() ? "true" : "false");
        } else if (node.isNull()) {
            out.append("null");
        } else {
            throw new IllegalArgumentException("not JSON: " + node.getNodeType());
        }
    }

    static int compareCodePoints(String a, String b) {
        int i = 0;
        int j = 0;
        while (i < a.length() && j < b.length()) {
            int x = a.codePointAt(i);
            int y = b.codePointAt(j);
            if (x != y) return Integer.compare(x, y);
            i += Character.charCount(x);
            j += Character.charCount(y);
        }
        return Integer.compare(a.length() - i, b.length() - j);
    }

    /** Only '"', '\\' and control characters escaped; everything else (Vietnamese too) as is. */
    private static void writeString(String text, StringBuilder out) {
        out.append('"');
        for (int i = 0; i < text.length(); i++) {
            char c = text.charAt(i);
            switch (c) {
                case '"' -> out.append("\\\"");
                case '\\' -> out.append("\\\\");
                case '\n' -> out.append("\\n");
                case '\r' -> out.append("\\r");
                case '\t' -> out.append("\\t");
                case '\b' -> out.append("\\b");
                case '\f' -> out.append("\\f");
                default -> {
                    if (c < 0x20) out.append(String.format("\\u%04x", (int) c));
                    else out.append(c);
                }
            }
        }
        out.append('"');
    }

    /** Python's repr of a float: the shortest digits that read back as the same double. */
    static String pythonFloat(double value) {
        if (Double.isNaN(value)) return "NaN";
        if (Double.isInfinite(value)) return value > 0 ? "Infinity" : "-Infinity";
        if (value == 0) return (1 / value < 0) ? "-0.0" : "0.0";
        BigDecimal exact = new BigDecimal(value);
        BigDecimal shortest = exact;
        for (int digits = 1; digits <= 17; digits++) {
            BigDecimal rounded = exact.round(new MathContext(digits, RoundingMode.HALF_EVEN));
            if (rounded.doubleValue() == value) {
                shortest = rounded;
                break;
            }
        }
        shortest = shortest.stripTrailingZeros();
        String sign = shortest.signum() < 0 ? "-" : "";
        String digits = shortest.unscaledValue().abs().toString();
        int exponent = digits.length() - 1 - shortest.scale(); // of the first digit
        if (exponent >= -4 && exponent < 16) {
            String plain = shortest.abs().toPlainString();
            return sign + (plain.contains(".") ? plain : plain + ".0");
        }
        String mantissa = digits.length() == 1 ? digits : digits.charAt(0) + "." + digits.substring(1);
        return sign + mantissa + "e" + (exponent < 0 ? "-" : "+") + String.format("%02d", Math.abs(exponent));
    }

    static String envelopeHash(ObjectNode envelope) throws Exception {
        ObjectNode hashed = envelope.deepCopy();
        hashed.remove("hash");
        hashed.remove("position");
        byte[] digest = MessageDigest.getInstance("SHA-256")
                .digest(canonicalJson(hashed).getBytes(StandardCharsets.UTF_8));
        return HexFormat.of().formatHex(digest);
    }

    // --- the envelope signature: "<key name> <base64(4-byte key ID || Ed25519 signature)>"

    boolean signedByTheRegistry(String hash, byte[] header) throws Exception {
        if (header == null) return false;
        String[] parts = new String(header, StandardCharsets.US_ASCII).split(" ");
        if (parts.length != 2) return false;
        byte[] signature;
        try {
            signature = Base64.getDecoder().decode(parts[1]);
        } catch (IllegalArgumentException notBase64) {
            return false;
        }
        if (signature.length != 68) return false;
        PublicKey key = trusted.get(parts[0] + "+" + HexFormat.of().formatHex(signature, 0, 4));
        if (key == null) return false;
        Signature verifier = Signature.getInstance("Ed25519");
        verifier.initVerify(key);
        verifier.update(("coordreg envelope\n" + hash + "\n").getBytes(StandardCharsets.UTF_8));
        return verifier.verify(signature, 4, 64);
    }

    // --- one record: decoded, checked, applied or set aside; one JSON line out

    void receive(String key, byte[] value, byte[] signature, CloudEvent event) throws Exception {
        records++;
        Map<String, Object> line = new LinkedHashMap<>();
        line.put("key", key);
        JsonNode parsed;
        try {
            parsed = JSON.readTree(value);
        } catch (Exception notJson) {
            parsed = null;
        }
        if (!(parsed instanceof ObjectNode envelope) || event == null) {
            line.put("error", "not a CloudEvent in JSON");
            setAside++;
            print(line);
            return;
        }
        String subject = event.getSubject();
        long sequence = ((Number) event.getExtension("sequence")).longValue();
        String claimed = String.valueOf(event.getExtension("hash"));
        String prevhash = String.valueOf(event.getExtension("prevhash"));
        String recomputed = envelopeHash(envelope);
        boolean hashOk = recomputed.equals(claimed);
        boolean signatureOk = signedByTheRegistry(claimed, signature);
        long lastSequence = appliedSequence.getOrDefault(subject, 0L);
        boolean duplicate = sequence <= lastSequence;
        boolean chainOk = sequence == lastSequence + 1 && prevhash.equals(appliedHash.getOrDefault(subject, ""));
        line.put("subject", subject);
        line.put("type", event.getType());
        line.put("id", event.getId());
        line.put("sequence", sequence);
        line.put("hash", claimed);
        line.put("recomputed", recomputed);
        line.put("hash_ok", hashOk);
        line.put("signature_ok", signatureOk);
        line.put("chain_ok", chainOk);
        if (hashOk && signatureOk && duplicate) {
            line.put("outcome", "duplicate");
            duplicates++;
        } else if (hashOk && signatureOk && chainOk) {
            line.put("outcome", "applied"); // apply the event here, in the same transaction
            appliedSequence.put(subject, sequence);
            appliedHash.put(subject, claimed);
            applied++;
        } else {
            line.put("outcome", "set aside"); // not the registry's next event: its real one follows
            setAside++;
        }
        print(line);
    }

    void summary() throws Exception {
        Map<String, Object> line = new LinkedHashMap<>();
        line.put("summary", true);
        line.put("records", records);
        line.put("applied", applied);
        line.put("duplicates", duplicates);
        line.put("set_aside", setAside);
        print(line);
    }

    private static void print(Map<String, Object> line) throws Exception {
        System.out.println(JSON.writeValueAsString(line));
        System.out.flush();
    }

    private static CloudEvent decode(Map<String, byte[]> headers, byte[] value) {
        org.apache.kafka.common.header.internals.RecordHeaders kafkaHeaders =
                new org.apache.kafka.common.header.internals.RecordHeaders();
        headers.forEach(kafkaHeaders::add);
        try {
            return KafkaMessageFactory.createReader(kafkaHeaders, value).toEvent();
        } catch (RuntimeException notACloudEvent) {
            return null;
        }
    }

    // --- the two ways in: a live topic, or records saved in a file

    static KafkaConsumer<String, byte[]> connect(
            String bootstrap, String username, String password, String caFile, String group) {
        Properties config = new Properties();
        config.put(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        config.put("security.protocol", "SASL_SSL");
        config.put("sasl.mechanism", "SCRAM-SHA-512");
        config.put("sasl.jaas.config", "org.apache.kafka.common.security.scram.ScramLoginModule required"
                + " username=\"" + username + "\" password=\"" + password + "\";");
        config.put("ssl.truststore.type", "PEM"); // the CA the operator hands out, as a PEM file
        config.put("ssl.truststore.location", caFile); // host names are checked (the default)
        config.put(ConsumerConfig.GROUP_ID_CONFIG, group); // a group under the principal's prefix
        config.put(ConsumerConfig.ISOLATION_LEVEL_CONFIG, "read_committed");
        config.put(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG, "earliest");
        config.put(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, "false");
        config.put(ConsumerConfig.KEY_DESERIALIZER_CLASS_CONFIG, StringDeserializer.class.getName());
        config.put(ConsumerConfig.VALUE_DESERIALIZER_CLASS_CONFIG, ByteArrayDeserializer.class.getName());
        return new KafkaConsumer<>(config);
    }

    private static Map<String, byte[]> headersOf(ConsumerRecord<String, byte[]> record) {
        Map<String, byte[]> headers = new LinkedHashMap<>();
        for (Header header : record.headers()) headers.put(header.key(), header.value());
        return headers;
    }

    public static void main(String[] args) throws Exception {
        if (args.length >= 9 && args[0].equals("kafka")) {
            Consumer consumer = new Consumer(List.of(args).subList(9, args.length));
            String password = Files.readString(Path.of(args[3]), StandardCharsets.UTF_8).strip();
            int expected = Integer.parseInt(args[7]);
            long deadline = System.nanoTime() + Duration.ofSeconds(Long.parseLong(args[8])).toNanos();
            try (KafkaConsumer<String, byte[]> kafka = connect(args[1], args[2], password, args[4], args[6])) {
                kafka.subscribe(List.of(args[5]));
                while (consumer.records < expected && System.nanoTime() < deadline) {
                    for (ConsumerRecord<String, byte[]> record : kafka.poll(Duration.ofMillis(500))) {
                        Map<String, byte[]> headers = headersOf(record);
                        consumer.receive(record.key(), record.value(), headers.get(SIGNATURE_HEADER),
                                decode(headers, record.value()));
                    }
                    kafka.commitSync(); // with what was applied, in one transaction, in a real system
                }
            }
            consumer.summary();
            System.exit(consumer.records >= expected ? 0 : 3);
        } else if (args.length >= 2 && args[0].equals("file")) {
            Consumer consumer = new Consumer(List.of(args).subList(2, args.length));
            for (Iterator<JsonNode> it = JSON.readTree(Path.of(args[1]).toFile()).elements(); it.hasNext(); ) {
                JsonNode record = it.next();
                byte[] value = record.get("value").textValue().getBytes(StandardCharsets.UTF_8);
                Map<String, byte[]> headers = new LinkedHashMap<>();
                headers.put("content-type", "application/cloudevents+json".getBytes(StandardCharsets.US_ASCII));
                JsonNode signature = record.get("signature");
                if (signature != null && signature.isTextual()) {
                    headers.put(SIGNATURE_HEADER, signature.textValue().getBytes(StandardCharsets.US_ASCII));
                }
                consumer.receive(record.get("key").textValue(), value, headers.get(SIGNATURE_HEADER),
                        decode(headers, value));
            }
            consumer.summary();
        } else {
            System.err.println("usage: kafka BOOTSTRAP USERNAME PASSWORD_FILE CA_FILE TOPIC GROUP EXPECTED"
                    + " TIMEOUT_SECONDS KEY... | file RECORDS_JSON KEY...");
            System.exit(2);
        }
    }
}
