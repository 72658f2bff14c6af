package jobs

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestChunkDaysShrinkPerAttempt(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ attempt, want int }{
		{1, 0}, {2, 1024}, {3, 512}, {4, 256}, {11, 2}, {12, 1}, {13, 1}, {25, 1}, {1000, 1},
	} {
		require.Equal(t, tc.want, chunkDays(tc.attempt), "attempt %d", tc.attempt)
	}
}
