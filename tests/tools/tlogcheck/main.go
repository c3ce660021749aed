// Command tlogcheck checks the registry's transparency log against reference Go
// implementations: golang.org/x/mod/sumdb/tlog and sumdb/note (the Go module
// checksum database's own log and signed notes), and
// github.com/transparency-dev/merkle (its RFC 6962 hasher, proof verifier and the
// known-answer test data of its testonly package).
//
// Two modes, see README.md beside this file:
//
//	tlogcheck vectors [-n N]   prints JSON test vectors computed by the references
//	tlogcheck verify           reads a JSON request on stdin, prints a JSON verdict per item
package main

import (
	"bufio"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"

	"filippo.io/torchwood"
	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"
	"github.com/transparency-dev/merkle/testonly"
	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

func main() {
	if len(os.Args) < 2 {
		usage()
	}
	var err error
	switch os.Args[1] {
	case "vectors":
		flags := flag.NewFlagSet("vectors", flag.ExitOnError)
		n := flags.Int64("n", 130, "number of leaves (leaf i holds the decimal digits of i)")
		_ = flags.Parse(os.Args[2:])
		err = vectors(*n, os.Stdout)
	case "verify":
		err = verify(os.Stdin, os.Stdout)
	default:
		usage()
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "tlogcheck:", err)
		os.Exit(1)
	}
}

func usage() {
	fmt.Fprintln(os.Stderr, "usage: tlogcheck vectors [-n N] | tlogcheck verify < request.json")
	os.Exit(2)
}

// --- vectors ---------------------------------------------------------------------------

type recordProof struct {
	Size  int64    `json:"size"`
	Index int64    `json:"index"`
	Proof []string `json:"proof"`
}

type treeProof struct {
	Size    int64    `json:"size"`
	OldSize int64    `json:"old_size"`
	Proof   []string `json:"proof"`
}

type storedIndex struct {
	Index int64 `json:"index"`
	Level int   `json:"level"`
	N     int64 `json:"n"`
}

type tlogVectors struct {
	Leaves       []string      `json:"leaves_b64"`
	StoredHashes []string      `json:"stored_hashes_b64"`
	StoredCounts []int64       `json:"stored_hash_counts"`
	SplitIndexes []storedIndex `json:"split_indexes"`
	TreeHashes   []string      `json:"tree_hashes_b64"`
	RecordProofs []recordProof `json:"record_proofs"`
	TreeProofs   []treeProof   `json:"tree_proofs"`
}

type merkleVectors struct {
	Leaves            []string      `json:"leaves_b64"`
	RootHashes        []string      `json:"root_hashes_b64"`
	NodeHashes        [][]string    `json:"node_hashes_b64"`
	InclusionProofs   []recordProof `json:"inclusion_proofs"`
	ConsistencyProofs []treeProof   `json:"consistency_proofs"`
}

type allVectors struct {
	Tlog   tlogVectors   `json:"tlog"`
	Merkle merkleVectors `json:"merkle_testonly"`
}

type storage []tlog.Hash

func (s storage) ReadHashes(indexes []int64) ([]tlog.Hash, error) {
	out := make([]tlog.Hash, len(indexes))
	for i, x := range indexes {
		if x < 0 || x >= int64(len(s)) {
			return nil, fmt.Errorf("no stored hash %d", x)
		}
		out[i] = s[x]
	}
	return out, nil
}

func b64(b []byte) string { return base64.StdEncoding.EncodeToString(b) }

func hashes64(hs []tlog.Hash) []string {
	out := make([]string, len(hs))
	for i, h := range hs {
		out[i] = b64(h[:])
	}
	return out
}

func bytes64(bs [][]byte) []string {
	out := make([]string, len(bs))
	for i, b := range bs {
		out[i] = b64(b)
	}
	return out
}

// proofSizes are the tree sizes whose every record proof and tree proof is printed.
func proofSizes(n int64) []int64 {
	var sizes []int64
	for t := int64(1); t <= n; t++ {
		if t <= 33 || t == 63 || t == 64 || t == 65 || t == 100 || t == 127 || t == 128 || t == n {
			sizes = append(sizes, t)
		}
	}
	return sizes
}

func vectors(n int64, w io.Writer) error {
	if n < 1 {
		return errors.New("-n must be at least 1")
	}
	var v allVectors
	var s storage
	v.Tlog.TreeHashes = append(v.Tlog.TreeHashes, "")
	empty, err := tlog.TreeHash(0, s)
	if err != nil {
		return err
	}
	v.Tlog.TreeHashes[0] = b64(empty[:])
	v.Tlog.StoredCounts = append(v.Tlog.StoredCounts, tlog.StoredHashCount(0))
	for i := int64(0); i < n; i++ {
		data := []byte(strconv.FormatInt(i, 10))
		v.Tlog.Leaves = append(v.Tlog.Leaves, b64(data))
		add, err := tlog.StoredHashes(i, data, s)
		if err != nil {
			return err
		}
		s = append(s, add...)
		v.Tlog.StoredCounts = append(v.Tlog.StoredCounts, tlog.StoredHashCount(i+1))
		th, err := tlog.TreeHash(i+1, s)
		if err != nil {
			return err
		}
		v.Tlog.TreeHashes = append(v.Tlog.TreeHashes, b64(th[:]))
	}
	v.Tlog.StoredHashes = hashes64(s)
	for x := int64(0); x < int64(len(s)); x++ {
		level, k := tlog.SplitStoredHashIndex(x)
		v.Tlog.SplitIndexes = append(v.Tlog.SplitIndexes, storedIndex{Index: x, Level: level, N: k})
	}
	for _, t := range proofSizes(n) {
		for i := int64(0); i < t; i++ {
			p, err := tlog.ProveRecord(t, i, s)
			if err != nil {
				return err
			}
			v.Tlog.RecordProofs = append(v.Tlog.RecordProofs, recordProof{t, i, hashes64(p)})
		}
		for m := int64(1); m <= t; m++ {
			p, err := tlog.ProveTree(t, m, s)
			if err != nil {
				return err
			}
			v.Tlog.TreeProofs = append(v.Tlog.TreeProofs, treeProof{t, m, hashes64(p)})
		}
	}

	leaves := testonly.LeafInputs()
	v.Merkle.Leaves = bytes64(leaves)
	v.Merkle.RootHashes = bytes64(testonly.RootHashes())
	for _, level := range testonly.NodeHashes() {
		v.Merkle.NodeHashes = append(v.Merkle.NodeHashes, bytes64(level))
	}
	tree := testonly.New(rfc6962.DefaultHasher)
	tree.AppendData(leaves...)
	for t := uint64(1); t <= uint64(len(leaves)); t++ {
		for i := uint64(0); i < t; i++ {
			p, err := tree.InclusionProof(i, t)
			if err != nil {
				return err
			}
			v.Merkle.InclusionProofs = append(v.Merkle.InclusionProofs, recordProof{int64(t), int64(i), bytes64(p)})
		}
		for m := uint64(1); m <= t; m++ {
			p, err := tree.ConsistencyProof(m, t)
			if err != nil {
				return err
			}
			v.Merkle.ConsistencyProofs = append(v.Merkle.ConsistencyProofs, treeProof{int64(t), int64(m), bytes64(p)})
		}
	}
	out := bufio.NewWriter(w)
	if err := json.NewEncoder(out).Encode(v); err != nil {
		return err
	}
	return out.Flush()
}

// --- verify ----------------------------------------------------------------------------

type inclusionItem struct {
	LeafData *string  `json:"leaf_data_b64"`
	LeafHash *string  `json:"leaf_hash_b64"`
	Index    int64    `json:"index"`
	Size     *int64   `json:"size"`
	Root     *string  `json:"root_b64"`
	Proof    []string `json:"proof"`
}

type consistencyItem struct {
	OldSize int64    `json:"old_size"`
	OldRoot string   `json:"old_root_b64"`
	Size    *int64   `json:"size"`
	Root    *string  `json:"root_b64"`
	Proof   []string `json:"proof"`
}

// cosigner is a witness's Ed25519 seed: filippo.io/torchwood's cosignature/v1
// (c2sp.org/tlog-cosignature) signer and verifier are made from it.
type cosigner struct {
	Name string `json:"name"`
	Seed string `json:"seed_b64"`
}

type request struct {
	VerifierKey  string            `json:"verifier_key"`
	VerifierKeys []string          `json:"verifier_keys"`
	Cosigners    []cosigner        `json:"cosigners"`
	Origin       *string           `json:"origin"`
	Checkpoint   *string           `json:"checkpoint"`
	Inclusion    []inclusionItem   `json:"inclusion"`
	Consistency  []consistencyItem `json:"consistency"`
}

type result struct {
	OK    bool   `json:"ok"`
	Error string `json:"error"`
}

type checkpointResult struct {
	OK       bool     `json:"ok"`
	Error    string   `json:"error"`
	Origin   string   `json:"origin,omitempty"`
	Size     int64    `json:"size"`
	Root     string   `json:"root_b64,omitempty"`
	SignedBy []string `json:"signed_by"`
	// The cosigners' vkeys as torchwood writes them, and the note with torchwood's
	// cosignature/v1 lines added after those verified.
	CosignerKeys []string `json:"cosigner_keys,omitempty"`
	CosignedNote string   `json:"cosigned_note,omitempty"`
}

type response struct {
	Checkpoint  *checkpointResult `json:"checkpoint"`
	Inclusion   []result          `json:"inclusion"`
	Consistency []result          `json:"consistency"`
}

type head struct {
	size int64
	root tlog.Hash
}

func verify(r io.Reader, w io.Writer) error {
	var req request
	dec := json.NewDecoder(r)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		return fmt.Errorf("reading the request: %w", err)
	}
	resp := response{Inclusion: []result{}, Consistency: []result{}}
	var trusted *head
	if req.Checkpoint != nil {
		cp, h := openCheckpoint(req)
		resp.Checkpoint = &cp
		if cp.OK {
			trusted = &h
		}
	}
	for _, item := range req.Inclusion {
		resp.Inclusion = append(resp.Inclusion, verdict(checkInclusion(item, req.Checkpoint != nil, trusted)))
	}
	for _, item := range req.Consistency {
		resp.Consistency = append(resp.Consistency, verdict(checkConsistency(item, req.Checkpoint != nil, trusted)))
	}
	out := bufio.NewWriter(w)
	enc := json.NewEncoder(out)
	enc.SetIndent("", "  ")
	if err := enc.Encode(resp); err != nil {
		return err
	}
	return out.Flush()
}

func verdict(err error) result {
	if err != nil {
		return result{OK: false, Error: err.Error()}
	}
	return result{OK: true}
}

// openCheckpoint verifies the signed note with note.Open and parses its body as a
// c2sp.org/tlog-checkpoint.
func openCheckpoint(req request) (checkpointResult, head) {
	fail := func(err error) (checkpointResult, head) {
		return checkpointResult{OK: false, Error: err.Error(), SignedBy: []string{}}, head{}
	}
	keys := req.VerifierKeys
	if req.VerifierKey != "" {
		keys = append([]string{req.VerifierKey}, keys...)
	}
	if len(keys) == 0 {
		return fail(errors.New("no verifier_key given"))
	}
	var verifiers []note.Verifier
	for _, k := range keys {
		v, err := note.NewVerifier(k)
		if err != nil {
			return fail(fmt.Errorf("verifier key %q: %w", k, err))
		}
		verifiers = append(verifiers, v)
	}
	var signers []note.Signer
	var cosignerKeys []string
	for _, c := range req.Cosigners {
		seed, err := base64.StdEncoding.DecodeString(c.Seed)
		if err != nil || len(seed) != ed25519.SeedSize {
			return fail(fmt.Errorf("cosigner %q: seed_b64 is not 32 bytes of base64", c.Name))
		}
		s, err := torchwood.NewCosignatureSigner(c.Name, ed25519.NewKeyFromSeed(seed))
		if err != nil {
			return fail(fmt.Errorf("cosigner %q: %w", c.Name, err))
		}
		signers = append(signers, s)
		verifiers = append(verifiers, s.Verifier())
		cosignerKeys = append(cosignerKeys, s.Verifier().String())
	}
	n, err := note.Open([]byte(*req.Checkpoint), note.VerifierList(verifiers...))
	if err != nil {
		return fail(fmt.Errorf("note.Open: %w", err))
	}
	cosigned := ""
	if len(signers) > 0 {
		signed, err := note.Sign(&note.Note{Text: n.Text, Sigs: n.Sigs}, signers...)
		if err != nil {
			return fail(fmt.Errorf("note.Sign with the cosigners: %w", err))
		}
		cosigned = string(signed)
	}
	origin, size, root, err := parseCheckpoint(n.Text)
	if err != nil {
		return fail(err)
	}
	if req.Origin != nil && origin != *req.Origin {
		return fail(fmt.Errorf("checkpoint origin %q, want %q", origin, *req.Origin))
	}
	signed := []string{}
	for _, s := range n.Sigs {
		signed = append(signed, s.Name)
	}
	return checkpointResult{
			OK: true, Origin: origin, Size: size, Root: b64(root[:]), SignedBy: signed,
			CosignerKeys: cosignerKeys, CosignedNote: cosigned,
		},
		head{size, root}
}

// parseCheckpoint reads the body: origin, decimal size without leading zeros, base64
// root hash, then optional non-empty extension lines.
func parseCheckpoint(text string) (string, int64, tlog.Hash, error) {
	var zero tlog.Hash
	lines := strings.Split(strings.TrimSuffix(text, "\n"), "\n")
	if !strings.HasSuffix(text, "\n") || len(lines) < 3 {
		return "", 0, zero, errors.New("checkpoint: fewer than three lines")
	}
	for _, l := range lines {
		if l == "" {
			return "", 0, zero, errors.New("checkpoint: empty line")
		}
	}
	size, err := strconv.ParseInt(lines[1], 10, 64)
	if err != nil || size < 0 || strconv.FormatInt(size, 10) != lines[1] {
		return "", 0, zero, fmt.Errorf("checkpoint: bad tree size %q", lines[1])
	}
	root, err := tlog.ParseHash(lines[2])
	if err != nil {
		return "", 0, zero, fmt.Errorf("checkpoint: bad root hash %q: %w", lines[2], err)
	}
	return lines[0], size, root, nil
}

func decodeHash(s, what string) (tlog.Hash, error) {
	var h tlog.Hash
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil || len(b) != tlog.HashSize {
		return h, fmt.Errorf("%s: not a base64 SHA-256 hash: %q", what, s)
	}
	copy(h[:], b)
	return h, nil
}

func decodeProof(p []string) ([]tlog.Hash, [][]byte, error) {
	hs := make([]tlog.Hash, len(p))
	bs := make([][]byte, len(p))
	for i, s := range p {
		h, err := decodeHash(s, fmt.Sprintf("proof[%d]", i))
		if err != nil {
			return nil, nil, err
		}
		hs[i] = h
		bs[i] = append([]byte(nil), h[:]...)
	}
	return hs, bs, nil
}

// treeHead is the (size, root) a proof is checked against: the item's own root_b64 if
// it has one, else the verified checkpoint's.
func treeHead(size *int64, root *string, haveCheckpoint bool, trusted *head) (int64, tlog.Hash, error) {
	if root != nil {
		h, err := decodeHash(*root, "root_b64")
		if err != nil {
			return 0, h, err
		}
		if size == nil {
			return 0, h, errors.New("root_b64 given without size")
		}
		return *size, h, nil
	}
	if !haveCheckpoint {
		return 0, tlog.Hash{}, errors.New("neither root_b64 nor a checkpoint given")
	}
	if trusted == nil {
		return 0, tlog.Hash{}, errors.New("the checkpoint did not verify")
	}
	if size != nil && *size != trusted.size {
		return 0, tlog.Hash{}, fmt.Errorf("size %d differs from the checkpoint's %d", *size, trusted.size)
	}
	return trusted.size, trusted.root, nil
}

func checkInclusion(item inclusionItem, haveCheckpoint bool, trusted *head) error {
	size, root, err := treeHead(item.Size, item.Root, haveCheckpoint, trusted)
	if err != nil {
		return err
	}
	var leaf tlog.Hash
	switch {
	case item.LeafData != nil && item.LeafHash != nil:
		return errors.New("give leaf_data_b64 or leaf_hash_b64, not both")
	case item.LeafData != nil:
		data, err := base64.StdEncoding.DecodeString(*item.LeafData)
		if err != nil {
			return fmt.Errorf("leaf_data_b64: %w", err)
		}
		leaf = tlog.RecordHash(data)
	case item.LeafHash != nil:
		if leaf, err = decodeHash(*item.LeafHash, "leaf_hash_b64"); err != nil {
			return err
		}
	default:
		return errors.New("no leaf_data_b64 or leaf_hash_b64")
	}
	hs, bs, err := decodeProof(item.Proof)
	if err != nil {
		return err
	}
	if err := tlog.CheckRecord(hs, size, root, item.Index, leaf); err != nil {
		return fmt.Errorf("tlog.CheckRecord: %w", err)
	}
	if size < 1 || item.Index < 0 || item.Index >= size { // tlog refuses these too
		return fmt.Errorf("index %d outside a tree of size %d", item.Index, size)
	}
	err = proof.VerifyInclusion(rfc6962.DefaultHasher, uint64(item.Index), uint64(size), leaf[:], bs, root[:])
	if err != nil {
		return fmt.Errorf("merkle proof.VerifyInclusion (tlog.CheckRecord accepted): %w", err)
	}
	return nil
}

func checkConsistency(item consistencyItem, haveCheckpoint bool, trusted *head) error {
	size, root, err := treeHead(item.Size, item.Root, haveCheckpoint, trusted)
	if err != nil {
		return err
	}
	oldRoot, err := decodeHash(item.OldRoot, "old_root_b64")
	if err != nil {
		return err
	}
	hs, bs, err := decodeProof(item.Proof)
	if err != nil {
		return err
	}
	if err := tlog.CheckTree(hs, size, root, item.OldSize, oldRoot); err != nil {
		return fmt.Errorf("tlog.CheckTree: %w", err)
	}
	if item.OldSize < 1 || item.OldSize > size { // tlog refuses these too
		return fmt.Errorf("old_size %d outside 1..%d", item.OldSize, size)
	}
	err = proof.VerifyConsistency(rfc6962.DefaultHasher, uint64(item.OldSize), uint64(size), bs, oldRoot[:], root[:])
	if err != nil {
		return fmt.Errorf("merkle proof.VerifyConsistency (tlog.CheckTree accepted): %w", err)
	}
	return nil
}
