# plots/a2a_bw.gp — all-to-all (dispatch/combine) bandwidth against EP size, with DeepEP's
# published points for comparison (plots/data/deepep_normal.csv, sources cited there).
# Variables (moesim sets them with -e):
#   datafile  data arranged by moesim, tab-separated blocks (two blank lines apart), each opening
#             with a header whose first field is its title; columns: EP size, GB/s. The first
#             nblocks blocks are this run's; the nref blocks after them are the reference points.
#   outfile, fmt  where to draw, and png|svg
#   nblocks, nref  block counts
#   figtitle, xlabel, ylabel  title and axis labels
if (fmt eq "svg") { set terminal svg size 800,500 dynamic font "sans,11" } else { set terminal pngcairo size 800,500 font "sans,10" }
set output outfile
set datafile separator tab
set title figtitle noenhanced
set xlabel xlabel noenhanced
set ylabel ylabel noenhanced
set key noenhanced outside right
set grid
set logscale x 2
set offsets graph 0.05, graph 0.05, 0, 0
set yrange [0:*]
plot for [i=0:nblocks-1] datafile index i using 1:2 with linespoints lw 2 pt 7 title columnheader(1), \
     for [i=nblocks:nblocks+nref-1] datafile index i using 1:2 with points pt (i-nblocks)*2+4 ps 2 lw 2 title columnheader(1)
