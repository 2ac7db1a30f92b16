# plots/roofline.gp — roofline of measured (and published) kernels: attained TFLOP/s against
# arithmetic intensity, under the roofs given as inputs.
# Variables (moesim sets them with -e):
#   datafile  data arranged by moesim from a kernel table, tab-separated blocks (two blank lines
#             apart), one per series (device), each opening with a header whose first field is its
#             title; columns: FLOP/byte (= 1000 x tflops / gbps of the row), TFLOP/s, kernel
#   outfile, fmt  where to draw, and png|svg
#   nseries   block count
#   ceil_n    number of roofs; ceil_names, ceil_tflops, ceil_gbps: space-separated name, peak
#             TFLOP/s and memory bandwidth GB/s of each (roof(x) = min(peak, x * GB/s / 1000))
#   xmin, xmax, ymin, ymax  axis ranges
#   figtitle  title
if (fmt eq "svg") { set terminal svg size 800,550 dynamic font "sans,11" } else { set terminal pngcairo size 800,550 font "sans,10" }
set output outfile
set datafile separator tab
set title figtitle noenhanced
set xlabel "arithmetic intensity (FLOP/byte)"
set ylabel "TFLOP/s"
set key noenhanced outside right
set logscale xy
set grid
set samples 1000
set xrange [xmin:xmax]
set yrange [ymin:ymax]
roof(x, peak, gbps) = x * gbps / 1000.0 < peak ? x * gbps / 1000.0 : peak
plot for [i=0:nseries-1] datafile index i using 1:2 with points pt 7 ps 1.3 title columnheader(1), \
     for [j=1:ceil_n] roof(x, word(ceil_tflops, j) + 0.0, word(ceil_gbps, j) + 0.0) with lines lw 2 dt 2 title word(ceil_names, j)
