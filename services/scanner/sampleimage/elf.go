package sampleimage

import (
	"bytes"
	"encoding/binary"
)

// ELF writes the smallest ELF64 file from which debug/buildinfo (and so
// `go version -m` and Trivy's Go binary analyzer) read this binary's build
// info: a header, one writable PT_LOAD segment, and in it the build info blob
// the Go linker emits.
//
// The blob layout follows debug/buildinfo: a 32-byte header ("\xff Go
// buildinf:", pointer size, flags with the inline-strings bit), then the Go
// version and the module info as varint-length-prefixed strings. The module
// info is framed by 16-byte sentinels, which readers strip.
func (b GoBinary) ELF() []byte {
	const (
		ehdrSize  = 64
		phdrSize  = 56
		dataOff   = 128 // header + program header, rounded up to 16
		vaddrBase = 0x500000
	)

	var blob bytes.Buffer
	hdr := make([]byte, 32)
	copy(hdr, "\xff Go buildinf:")
	hdr[14] = 8   // pointer size
	hdr[15] = 0x2 // flagsVersionInl: strings follow inline
	blob.Write(hdr)
	writeVarString(&blob, b.GoVersion)
	sentinel := bytes.Repeat([]byte{0xAA}, 16)
	writeVarString(&blob, string(sentinel)+b.BuildInfo().String()+string(sentinel))
	data := blob.Bytes()

	var out bytes.Buffer
	le := binary.LittleEndian
	// ELF header.
	ident := []byte{0x7f, 'E', 'L', 'F', 2 /* 64-bit */, 1 /* little endian */, 1 /* version */, 0 /* SysV */}
	out.Write(ident)
	out.Write(make([]byte, 16-len(ident)))
	put16 := func(v uint16) { _ = binary.Write(&out, le, v) }
	put32 := func(v uint32) { _ = binary.Write(&out, le, v) }
	put64 := func(v uint64) { _ = binary.Write(&out, le, v) }
	put16(2)  // e_type: ET_EXEC
	put16(62) // e_machine: EM_X86_64
	put32(1)  // e_version
	put64(0)  // e_entry
	put64(ehdrSize)
	put64(0) // e_shoff: no section headers
	put32(0) // e_flags
	put16(ehdrSize)
	put16(phdrSize)
	put16(1)  // e_phnum
	put16(64) // e_shentsize
	put16(0)  // e_shnum
	put16(0)  // e_shstrndx
	// Program header: one loadable, readable and writable (not executable)
	// segment, which is where debug/buildinfo looks when there is no
	// .go.buildinfo section.
	put32(1)     // PT_LOAD
	put32(4 | 2) // PF_R | PF_W
	put64(dataOff)
	put64(vaddrBase + dataOff)
	put64(vaddrBase + dataOff)
	put64(uint64(len(data)))
	put64(uint64(len(data)))
	put64(16)
	out.Write(make([]byte, dataOff-out.Len()))
	out.Write(data)
	return out.Bytes()
}

func writeVarString(w *bytes.Buffer, s string) {
	w.Write(binary.AppendUvarint(nil, uint64(len(s))))
	w.WriteString(s)
}
