module coordreg/bench/loadgen

go 1.22
