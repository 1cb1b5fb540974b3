#!/usr/bin/env bash
# A DCGAN on Fashion-MNIST (Debian's dataset-fashion-mnist) and its quality number, as numbered stages:
#
#   0  corpus      asrkit corpus fashion-mnist (installs the package via tools/install_debian_deps.sh
#                  where it may)                      -> data/images/{train,dev}/<class>/*.png
#   1  classifier  asrkit train face: a small ResNet classifier of the real training images, whose
#                  embedding is the Fréchet distance's feature space -> exp/classifier
#   2  train gan   asrkit train gan (discriminator and generator phases; a sample grid per epoch)
#                                                     -> exp/gan, exp/gan/samples/epoch-NNN.png
#   3  sample      asrkit sample: 64 samples of last.pt (the generator at the end of training; the
#                  dev fd_pix of best.pt is a coarse selector, docs/gan.md) -> exp/gan/samples.png
#   4  frechet     asrkit frechet: the generator, held-out real images (the floor), an untrained
#                  generator and a per-pixel Gaussian (the ceilings) against the real training images;
#                  mode coverage of each         -> exp/gan/frechet.txt (the results table)
#
# Every stage is resumable: finished outputs are kept, training continues from its last checkpoint.
# Logs: exp/log/NN_<stage>.log.
#
#   recipes/gan/run.sh                                   # everything, into recipes/gan/{data,exp}
#   recipes/gan/run.sh --dir /tmp/gan --device cuda
#   recipes/gan/run.sh --images /data/faces --gan-conf conf/gan_dcgan.yaml \
#       --classifier-conf conf/face_resnet.yaml          # any image folder with train/ and dev/
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

stage=0
stop_stage=100
device=auto
dir=$here
images=
per_class=
num=1000
classifier_conf=$here/conf/classifier_fmnist.yaml
gan_conf=$here/conf/gan_fmnist.yaml
impl=

usage() {
  cat <<USAGE
usage: $0 [--stage N] [--stop-stage N] [--device auto|cpu|cuda] [--dir DIR] [--images DIR] [--per-class N]
          [--num N] [--classifier-conf FILE] [--gan-conf FILE] [--impl scratch|native]
  stages: 0 corpus, 1 classifier, 2 train gan, 3 sample, 4 frechet
  --images     an image folder with train/<class>/ and dev/<class>/ to use instead of Fashion-MNIST
  --per-class  Fashion-MNIST training images per class (default: all 6000)
  --num        images of every set of the Fréchet table (default $num)
  --dir        where data/ and exp/ go (default: $here)
  --impl       layer implementation of both models (default: the configs', scratch)
USAGE
}

. "$here/../lib/common.sh"
parse_options "$@"
dir=$(realpath -m "$dir")  # a relative --dir stays right after the cd below
check_numbers stage stop_stage num
[ -z "$per_class" ] || check_numbers per_class
impl_overrides
classifier_conf=$(realpath -m "$classifier_conf")
gan_conf=$(realpath -m "$gan_conf")
[ -z "$images" ] || images=$(realpath -m "$images")
tools=$(realpath "$here/../../tools")
find_asrkit

mkdir -p "$dir"
cd "$dir"
logdir=exp/log
mkdir -p "$logdir"
data=data/images
clf=exp/classifier
gan=exp/gan

if run_stage 0 corpus; then
  if [ -n "$images" ]; then
    for s in train dev; do
      [ -d "$images/$s" ] || {
        echo "$0: --images $images has no $s/ folder (it needs train/<class>/ and dev/<class>/)" >&2; exit 1; }
    done
    if [ -e $data ] && [ ! -L $data ]; then
      echo "$0: $dir/$data holds images of an earlier run; give another --dir for --images" >&2; exit 1
    fi
    mkdir -p data
    ln -sfn "$images" $data
    echo "$data -> $images"
  elif [ -f $data/fashion_mnist.yaml ]; then echo "$data is there"
  else
    [ ! -L $data ] || rm $data  # the link of an earlier --images run
    [ -d /usr/share/datasets/fashion-mnist ] || "$tools/install_debian_deps.sh"
    $ASRKIT corpus fashion-mnist $data ${per_class:+--per-class "$per_class"} 2>&1 | tee "$log"
  fi
fi

if run_stage 1 classifier; then
  $ASRKIT train face --train $data/train --dev $data/dev --out $clf --conf "$classifier_conf" \
    --device "$device" --resume ${train_overrides[@]+"${train_overrides[@]}"} 2>&1 | tee "$log"
fi

if run_stage 2 train_gan; then
  $ASRKIT train gan --train $data/train --dev $data/dev --out $gan --conf "$gan_conf" \
    --device "$device" --resume ${train_overrides[@]+"${train_overrides[@]}"} 2>&1 | tee "$log"
fi

if run_stage 3 sample; then
  $ASRKIT sample $gan --checkpoint last --num 64 --out $gan/samples.png --device "$device" 2>&1 | tee "$log"
  echo "samples: $dir/$gan/samples.png (per epoch: $dir/$gan/samples/)"
fi

if run_stage 4 frechet; then
  $ASRKIT frechet $clf $data/train $gan --checkpoint last --heldout $data/dev --num "$num" --device "$device" \
    > $gan/frechet.txt.tmp 2> "$log"
  mv $gan/frechet.txt.tmp $gan/frechet.txt
  echo "Fréchet distance in the classifier's embedding space ($clf), $num images each, vs $data/train:"
  cat $gan/frechet.txt
fi
